"""Scrapy settings: polite live crawling by default; the spider relaxes them for replay."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from animedb.cli import DISTRIBUTION

try:
    _VERSION = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a checkout that is not installed
    _VERSION = "0.1.0"

BOT_NAME = "scrapy_crawler"
SPIDER_MODULES = ["scrapy_crawler.spiders"]
NEWSPIDER_MODULE = "scrapy_crawler.spiders"
# Our `crawl` replaces Scrapy's: one-line argument errors, exit 1 when the seeds were kept.
COMMANDS_MODULE = "scrapy_crawler.commands"

# Say who we are and where to complain.
USER_AGENT = (
    f"AnimeDataBaseCrawler/{_VERSION} (+https://github.com/animedatabase/animedatabase; "
    "catalog research crawler, one request at a time)"
)

# Politeness: obey robots.txt, one request at a time, AutoThrottle from a 2 s delay.
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 4
CONCURRENT_REQUESTS_PER_DOMAIN = 1
DOWNLOAD_DELAY = 2.0
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 2.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
COOKIES_ENABLED = False

# Retries on 429 and 5xx, with a wait before each (BackoffMiddleware).
RETRY_ENABLED = True
RETRY_TIMES = 4
RETRY_HTTP_CODES = [429, 500, 502, 503, 504, 522, 524, 408]
BACKOFF_ENABLED = True
BACKOFF_BASE = 2.0
BACKOFF_MAX = 120.0

# Error pages reach the spider after the last retry, so they are counted as broken pages.
HTTPERROR_ALLOW_ALL = True

DOWNLOADER_MIDDLEWARES = {
    # Above RetryMiddleware (550): sees a 429/5xx first and waits before the retry.
    "scrapy_crawler.middlewares.BackoffMiddleware": 555,
    # Moved from 900 to below HttpCompression (590): responses pass middlewares from high to
    # low, so a page is saved decoded, as the replay reads it.
    "scrapy.downloadermiddlewares.httpcache.HttpCacheMiddleware": 580,
}

ITEM_PIPELINES = {
    "scrapy_crawler.pipelines.ValidatePipeline": 100,
    "scrapy_crawler.pipelines.CsvWriterPipeline": 800,
}

# No remote-control HTTP server inside a crawler (Scrapy 2.19 starts one by default).
REMOTE_CONTROL_ENABLED = False

EXTENSIONS = {
    "scrapy_crawler.extensions.CrawlReport": 900,
    "scrapy.extensions.telnet.TelnetConsole": None,
}

# Where the seed CSVs go; the spider's `-a out=DIR` overrides it.
SEEDS_DIR = "seeds"
# Replace a seed file even when it would lose more than half its rows (`-a allow_shrink=true`).
SEEDS_ALLOW_SHRINK = False
# Replay (`-a replay=DIR`) and save (`-a save=DIR`) are Scrapy's HTTP cache over folders of
# pages (scrapy_crawler/httpcache.py); the spider sets the folders and turns the cache on.
HTTPCACHE_ENABLED = False
HTTPCACHE_STORAGE = "scrapy_crawler.httpcache.PageFolderStorage"
HTTPCACHE_POLICY = "scrapy_crawler.httpcache.SavedPagesPolicy"
REPLAY_DIR = None
SAVE_DIR = None

# Every page and item is logged at DEBUG; INFO keeps a crawl's log readable.
LOG_LEVEL = "INFO"
FEED_EXPORT_ENCODING = "utf-8"

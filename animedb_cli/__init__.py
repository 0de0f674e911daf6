"""`animedb`, the project's one command: its subcommands are the tools (`crawl`, `db`, `generate`,
`export`), the database's own (`env`, `start`, `stop`, `dbt`, `check-seeds`) and the `demo` that
runs them all. It sits above the tools and imports them; nothing imports it."""

"""AnimeDataBase: what the crawler, the database build, the generators and the exporter share."""

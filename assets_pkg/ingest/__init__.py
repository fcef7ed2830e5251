"""File ingest: text files dropped in data/inbox/files/ streamed into bounded Parquet shards."""

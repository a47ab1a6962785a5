"""Worker processes: sync, threaded and asyncio."""

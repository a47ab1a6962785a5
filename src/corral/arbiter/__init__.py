"""The master process: binds, forks, supervises and signals workers."""

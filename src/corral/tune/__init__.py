"""`corral tune APP`: measure an app under load and pick its workers, threads and worker class."""

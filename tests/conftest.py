pytest_plugins = ["watcher.lab.pytest_plugin"]

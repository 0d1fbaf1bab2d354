"""mpp: a MySQL/MariaDB pool state manager.

Data flows one way: probe -> observations -> logic (pure) -> executor -> store -> publishers.
"""

__version__ = "0.1.0"

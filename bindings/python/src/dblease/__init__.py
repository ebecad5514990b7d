"""dblease: isolated PostgreSQL and Redis databases from dbleased.

    import dblease
    with dblease.Client() as c:
        lease = c.lease(kind="postgres", ttl=600)
        use(lease.url)
        c.release(lease.id)

pytest: the plugin (installed with this package) gives the fixtures
dblease_url, dblease_worker_url and dblease_redis_url.
"""
from .client import Client, DbleaseError, Lease
from .paths import default_socket_path
from .template import hash_dir, template

__all__ = ["Client", "DbleaseError", "Lease", "default_socket_path", "hash_dir", "template"]
__version__ = "0.1.0"

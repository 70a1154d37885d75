"""The Falcon WSGI app: thin resources over the service functions of `salon`."""

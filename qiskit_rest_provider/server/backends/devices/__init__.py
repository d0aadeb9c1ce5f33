"""Built-in device definitions of the reference server (generated JSON; see ``generate``)."""

"""Jobs: the store (all SQL), admission (validation, limits), the dispatcher, shapes, routes."""

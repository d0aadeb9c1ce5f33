"""The transpiler service (protocol §8): routes, and the tasks that run in the workers."""

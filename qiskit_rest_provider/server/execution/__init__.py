"""Where jobs execute: the executor interface, the local worker pool, and the programs on Aer."""

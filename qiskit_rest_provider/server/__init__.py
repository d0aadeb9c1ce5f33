"""Reference server for the Qiskit Runtime REST API (FastAPI + SQLAlchemy + Qiskit Aer)."""

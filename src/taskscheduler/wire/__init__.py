"""What the REST API and its client both speak: the bodies that are not domain models
(``bodies``) and how our errors travel as status codes and JSON (``errors``).

Nothing here imports FastAPI, SQLAlchemy, Prefect or the server's modules: the server
(``taskscheduler.api``) and the client (``taskscheduler.client``) import it alike.
"""

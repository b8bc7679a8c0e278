"""What runs inside a job: the generic flow (``flow``) and how it runs a task's code
(``execution``), the fast lane's warm interpreter (``warm``), and a job's door to the platform
(``door``). The only part of the package besides ``_prefect`` that imports Prefect."""

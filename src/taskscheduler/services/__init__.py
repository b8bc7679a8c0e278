"""The platform's own services beside Prefect's: the watchdog and the monitoring figures."""

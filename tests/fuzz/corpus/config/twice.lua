log { level = "warn" }
log { level = "info" }

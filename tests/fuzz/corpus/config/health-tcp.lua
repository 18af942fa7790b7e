announce { port = 1 }
health { tcp = 65535 }

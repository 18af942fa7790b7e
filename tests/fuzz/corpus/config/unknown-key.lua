announce { prot = 8000 }

-- A suite that reports failure through os.exit with a negative code.
os.exit(-1)

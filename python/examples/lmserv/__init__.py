# Stands for your application's own lmserv package: keep yours. Only
# lmserv/discovery/ is replaced, by the three files next to this one.

function on_join() announce { port = 1 } end
log("x")
registry({}, 2)

function on_joni(peer) end
function filtre(peer) end
filter = 3

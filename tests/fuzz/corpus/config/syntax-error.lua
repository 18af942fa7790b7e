announce { port = 8000 }

function filter(peer)
  return peer.txt.model ==
end

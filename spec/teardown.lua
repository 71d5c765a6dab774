-- lbox spec/teardown.lua: what a spec run leaves by design in its own
-- store goes when the run ends: its networks, the default bridge
-- included, and with the last of them lbox's nftables table. Each store
-- has its own default bridge and subnet: left on the host, the bridges of
-- finished runs would take every free default subnet.
local network = require "lbox.network"

for _, net in ipairs(network.list()) do
  local ok, err = pcall(network.remove, net.name, { predefined = true })
  if not ok then io.stderr:write("teardown: ", tostring(err), "\n") end
end
return 0

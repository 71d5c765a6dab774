-- lbox network create [--subnet CIDR] [--gateway IP] NAME | ls | inspect
-- NAME... | rm NAME...: networks of containers (bridges on the host).
local cjson = require "cjson"
local errors = require "lbox.errors"
local network = require "lbox.network"
local options = require "lbox.options"

local USAGE = [[
usage: lbox network create [--subnet A.B.C.D/N] [--gateway IP] NAME   create a network (a bridge)
       lbox network ls                                               list networks
       lbox network inspect NAME...                                  show networks as JSON
       lbox network rm NAME...                                       remove networks no container uses]]

local CREATE_OPTIONS = {
  { "subnet", value = "A.B.C.D/N", help = "its addresses (default: the first free 172.30-31.N.0/24)" },
  { "gateway", value = "IP", help = "the bridge's address (default: the subnet's first)" },
  { "help", help = "show this help" },
}

local commands = {}

function commands.create(...)
  local args = { ... }
  local opts, first = options.parse(CREATE_OPTIONS, args)
  if opts.help then
    print("usage: lbox network create [OPTIONS] NAME\n\n" .. options.usage(CREATE_OPTIONS))
    return
  end
  if #args ~= first then errors.raise("usage: lbox network create [--subnet A.B.C.D/N] [--gateway IP] NAME") end
  print(network.create(args[first], { subnet = opts.subnet, gateway = opts.gateway }).name)
end

function commands.ls(extra)
  if extra then errors.raise("usage: lbox network ls") end
  print(string.format("%-20s %-18s %-16s %-10s %s", "NAME", "SUBNET", "GATEWAY", "BRIDGE", "CONTAINERS"))
  for _, net in ipairs(network.list()) do
    local n = 0
    for _ in pairs(net.leases) do n = n + 1 end
    print(string.format("%-20s %-18s %-16s %-10s %d", net.name, net.subnet, net.gateway, net.bridge, n))
  end
end

function commands.inspect(...)
  if select("#", ...) == 0 then errors.raise("usage: lbox network inspect NAME...") end
  local list = {}
  for i, name in ipairs { ... } do list[i] = network.inspect(name) end
  print((cjson.encode(list):gsub("\\/", "/")))
end

function commands.rm(...)
  if select("#", ...) == 0 then errors.raise("usage: lbox network rm NAME...") end
  for _, name in ipairs { ... } do
    network.remove(name)
    print(name)
  end
end

local command = ...
if command == nil or command == "--help" or command == "-h" then
  print(USAGE)
  return command and 0 or 125
end
if not commands[command] then
  errors.raise(string.format("unknown network command %q (see lbox network --help)", command))
end
commands[command](select(2, ...))
return 0

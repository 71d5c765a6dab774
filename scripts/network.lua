-- lbox network create [--subnet CIDR] [--gateway IP] NAME | ls | inspect
-- NAME... | rm NAME...: networks of containers (bridges on the host).
local cjson = require "cjson"
local errors = require "lbox.errors"
local network = require "lbox.network"
local options = require "lbox.options"

local commands = {}

function commands.create(argv)
  local opts, names = options.command({
    name = "network create", synopsis = { "[--subnet A.B.C.D/N] [--gateway IP] NAME" },
    summary = "create a network: a bridge on the host, an address range, the rules of lbox's nftables table",
    options = {
      { "subnet", value = "A.B.C.D/N", help = "its addresses (default: the first free 172.30-31.N.0/24)" },
      { "gateway", value = "IP", help = "the bridge's address (default: the subnet's first)" },
    },
    operands = { 1, 1 },
  }, argv)
  if not opts then return end
  print(network.create(names[1], { subnet = opts.subnet, gateway = opts.gateway }).name)
end

function commands.ls(argv)
  if not options.command({ name = "network ls", synopsis = { "" }, summary = "list networks", operands = { 0, 0 } },
                         argv) then
    return
  end
  print(string.format("%-20s %-18s %-16s %-10s %s", "NAME", "SUBNET", "GATEWAY", "BRIDGE", "CONTAINERS"))
  for _, net in ipairs(network.list()) do
    local n = 0
    for _ in pairs(net.leases) do n = n + 1 end
    print(string.format("%-20s %-18s %-16s %-10s %d", net.name, net.subnet, net.gateway, net.bridge, n))
  end
end

function commands.inspect(argv)
  local opts, names = options.command({
    name = "network inspect", synopsis = { "NAME..." }, summary = "show networks and their leases as JSON",
    operands = { 1 },
  }, argv)
  if not opts then return end
  local list = {}
  for i, name in ipairs(names) do list[i] = network.inspect(name) end
  print((cjson.encode(list):gsub("\\/", "/")))
end

function commands.rm(argv)
  local opts, names = options.command({
    name = "network rm", synopsis = { "NAME..." }, summary = "remove networks no container uses, and their bridges",
    operands = { 1 },
  }, argv)
  if not opts then return end
  for _, name in ipairs(names) do
    network.remove(name)
    print(name)
  end
end

local opts, args = options.command({
  name = "network",
  synopsis = { "create [--subnet A.B.C.D/N] [--gateway IP] NAME", "ls", "inspect NAME...", "rm NAME..." },
  summary = "manage networks of containers (lbox run --network NAME)",
  description = "create: a bridge on the host, an address range, the rules of lbox's nftables table. ls: the "
    .. "networks. inspect: networks and their leases as JSON. rm: networks no container uses, and their "
    .. "bridges. Each answers --help; see lbox-network-create(1) and the others.",
  subcommands = { "create", "ls", "inspect", "rm" },
  operands = { 1 },
}, { ... })
if not opts then return 0 end
local command = args[1]
if not commands[command] then
  errors.raise(string.format("unknown network command %q (see lbox network --help)", command))
end
commands[command](table.move(args, 2, #args, 1, {}))
return 0

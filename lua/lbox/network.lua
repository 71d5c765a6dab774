--- Networks: bridges on the host, an address allocator, and the nftables
-- rules that give containers outbound NAT, published ports and isolation.
--
-- Each network is a JSON file in $LBOX_STORE/networks, holding its leases
-- (address -> container). Every change happens under one lock
-- (networks/lock) and ends by making lbox's own nftables table ("ip lbox")
-- what those files say, in one transaction: rewritten whole when networks
-- come and go, a published port's map elements added or deleted when
-- containers do. A lease whose container's owner died (lbox SIGKILLed) is
-- swept by the next change, with its veth and its ports' elements.
local cjson = require "cjson"
local core = require "lbox.core"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local images = require "lbox.images"
local state = require "lbox.state"

local M = {}

local try = errors.try

--- The network made on first use, as docker's "bridge" (docker0), on the
-- first free /16 from 172.29.0.0 down (docker and podman take others).
M.DEFAULT = { name = "bridge", subnet = "172.29.0.0/16", bridge = "lbox0" }
M.DEFAULT_STORE = "/var/lib/lbox"
-- host ends of the containers' veths: "lbx" + the id's first 11 digits
M.VETH_PREFIX = "lbx"
-- bridges of user-defined networks: "lbr-" + 8 hex digits
M.BRIDGE_PREFIX = "lbr-"
-- modes that are not a network's name
M.RESERVED = { none = true, host = true, default = true }

function M.dir()
  return images.store() .. "/networks"
end

-- FNV-1a of the store's path, 8 hex digits: what tells stores apart
local function store_tag()
  local hash = 0x811c9dc5
  for i = 1, #images.store() do hash = ((hash ~ images.store():byte(i)) * 0x01000193) & 0xffffffff end
  return string.format("%08x", hash)
end

--- lbox's nftables table ("ip lbox"; another store than the default one
-- has a table of its own, "ip lbox-TAG", so that stores never rewrite
-- each other's rules).
function M.table_name()
  return images.store() == M.DEFAULT_STORE and "lbox" or "lbox-" .. store_tag()
end

--- The default network's bridge: lbox0, or lboxTAG for another store.
function M.default_bridge()
  return images.store() == M.DEFAULT_STORE and M.DEFAULT.bridge or "lbox" .. store_tag()
end

local function path_of(name)
  return M.dir() .. "/" .. name .. ".json"
end

-- Addresses ---------------------------------------------------------------

--- "a.b.c.d" -> integer | nil
function M.parse_address(text)
  if type(text) ~= "string" then return nil end
  local a, b, c, d = text:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  local n = 0
  for _, part in ipairs { a, b, c, d } do
    local v = tonumber(part)
    if v > 255 or (#part > 1 and part:sub(1, 1) == "0") then return nil end
    n = n * 256 + v
  end
  return n
end

function M.format_address(n)
  return string.format("%d.%d.%d.%d", n >> 24 & 255, n >> 16 & 255, n >> 8 & 255, n & 255)
end

local function mask_of(prefix)
  return prefix == 0 and 0 or (0xffffffff << (32 - prefix)) & 0xffffffff
end

--- "a.b.c.d/n" -> network (integer), prefix | nil, reason
function M.parse_subnet(text)
  local address, prefix = tostring(text):match("^([%d.]+)/(%d+)$")
  local base = M.parse_address(address)
  prefix = tonumber(prefix)
  if not base or not prefix or prefix > 32 then return nil, "not a subnet (use A.B.C.D/N)" end
  if prefix < 8 or prefix > 29 then return nil, "use a prefix length from 8 to 29" end
  if base & mask_of(prefix) ~= base then
    return nil, string.format("not a network address (did you mean %s/%d?)",
      M.format_address(base & mask_of(prefix)), prefix)
  end
  return base, prefix
end

local function overlaps(base1, prefix1, base2, prefix2)
  local mask = mask_of(math.min(prefix1, prefix2))
  return base1 & mask == base2 & mask
end

-- The host's IPv4 routes other than lbox's own bridges' and the default:
-- { { base, prefix, device } }, from /proc/net/route (little-endian hex).
local function host_routes(own_bridges)
  local routes = {}
  for line in (fs.read_file("/proc/net/route") or ""):gmatch("[^\n]+") do
    local device, destination, mask = line:match("^(%S+)%s+(%x+)%s+%x+%s+%x+%s+%d+%s+%d+%s+%d+%s+(%x+)")
    if device and not own_bridges[device] then
      local function host_order(hex)
        local v = tonumber(hex, 16)
        return (v & 255) << 24 | (v >> 8 & 255) << 16 | (v >> 16 & 255) << 8 | (v >> 24 & 255)
      end
      local m = host_order(mask)
      local prefix = 0
      while prefix < 32 and m & (1 << (31 - prefix)) ~= 0 do prefix = prefix + 1 end
      if prefix > 0 then routes[#routes + 1] = { host_order(destination), prefix, device } end
    end
  end
  return routes
end

-- Store -------------------------------------------------------------------

local function read(name)
  local text = fs.read_file(path_of(name))
  if not text then return nil end
  local ok, net = pcall(cjson.decode, text)
  if not ok or type(net) ~= "table" then return nil end
  if type(net.leases) ~= "table" then net.leases = {} end
  return net
end

local function write(net)
  local path = path_of(net.name)
  -- cjson writes an empty table as {}: leases stay an object
  fs.write_file(path .. ".tmp", cjson.encode(net))
  try("cannot record network " .. net.name, os.rename(path .. ".tmp", path))
end

local function all_networks()
  local list = {}
  for file in fs.dir(M.dir()) do
    local name = file:match("^(.+)%.json$")
    local net = name and read(name)
    if net then list[#list + 1] = net end
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  return list
end

-- Hold the networks' lock while `fn()` runs; released on every path.
local function locked(fn, ...)
  try("cannot create " .. M.dir(), fs.mkdir_p(M.dir()))
  local fd = try("cannot open the networks' lock", core.open(M.dir() .. "/lock", "create"))
  core.flock(fd, "exclusive")
  local results = table.pack(pcall(fn, ...))
  core.close(fd)
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

-- Kernel state ------------------------------------------------------------

local function link_exists(name)
  return fs.kind("/sys/class/net/" .. name) ~= nil
end

local function set_sysctl(path, value)
  local f = io.open("/proc/sys/" .. path, "w")
  if not f then return false end
  local ok = f:write(value)
  f:close()
  return ok ~= nil
end

-- The network's bridge, with the gateway's address, up. Also what the
-- rules need: forwarding on (as docker), and 127.0.0.1 routable to the
-- bridge so that published ports answer on the host's loopback (docker
-- with userland-proxy=false does the same, instead of a proxy process per port).
local function ensure_bridge(net)
  -- each part on its own, so that one left half made (lbox killed
  -- in the middle, say) is completed
  local made = false
  if not link_exists(net.bridge) then
    try("cannot create bridge " .. net.bridge, core.bridge_add(net.bridge))
    made = true
  end
  local _, prefix = M.parse_subnet(net.subnet)
  local ok, msg, errno = core.addr_add(net.bridge, net.gateway, prefix)
  if ok or errno == core.EEXIST then ok, msg = core.link_set(net.bridge, { up = true }) end
  if not ok then
    if made then core.link_del(net.bridge) end
    errors.raise("cannot set up bridge " .. net.bridge .. ": " .. msg)
  end
  set_sysctl("net/ipv4/conf/" .. net.bridge .. "/route_localnet", "1")
  if fs.read_file("/proc/sys/net/ipv4/ip_forward") ~= "1\n" then
    try("cannot enable IPv4 forwarding", set_sysctl("net/ipv4/ip_forward", "1"))
  end
end

-- Published ports are elements of four maps in lbox's table, one per
-- protocol, keyed by the port (any of the host's addresses) or by address
-- and port, to the container's address and port; the ports chain's rules
-- never change. Publishing a port adds elements, a batch of its own
-- (core.nft_elements) that needs no listing of the ruleset first.
local function port_map(port)
  return "ports_" .. port.protocol .. (port.host_ip and "_ip" or "")
end

-- An IPv4 address's 4 bytes; a port's 2, padded to 4 in a concatenation.
local function address_bytes(text)
  return string.pack(">I4", M.parse_address(text))
end

local function port_bytes(port, in_concatenation)
  return string.pack(">I2", port) .. (in_concatenation and "\0\0" or "")
end

-- The map elements of the ports of container `address`: { map, key, data }.
local function port_elements(address, ports)
  local elements = {}
  for _, port in ipairs(ports or {}) do
    local key = port.host_ip and address_bytes(port.host_ip) .. port_bytes(port.host_port, true)
      or port_bytes(port.host_port)
    elements[#elements + 1] = { port_map(port), key, address_bytes(address) .. port_bytes(port.container_port, true) }
  end
  return elements
end

-- The elements of every map, in nft's syntax: { [map] = { "KEY : DATA" } }.
local function port_map_texts(networks)
  local texts = {}
  for _, net in ipairs(networks) do
    local addresses = {}
    for address in pairs(net.leases) do addresses[#addresses + 1] = address end
    table.sort(addresses)
    for _, address in ipairs(addresses) do
      for _, port in ipairs(net.leases[address].ports or {}) do
        local map = port_map(port)
        texts[map] = texts[map] or {}
        table.insert(texts[map], string.format("%s%d : %s . %d", port.host_ip and (port.host_ip .. " . ") or "",
          port.host_port, address, port.container_port))
      end
    end
  end
  return texts
end

--- The nftables text of lbox's table for `networks`: replaces the whole
-- table in one transaction.
function M.ruleset(networks)
  local lines = {
    "add table ip " .. M.table_name(), "delete table ip " .. M.table_name(), "table ip " .. M.table_name() .. " {",
  }
  local function add(fmt, ...) lines[#lines + 1] = string.format(fmt, ...) end
  local bridges = {}
  for _, net in ipairs(networks) do bridges[#bridges + 1] = string.format("%q", net.bridge) end
  add("  chain forward {")
  add("    type filter hook forward priority filter; policy accept;")
  if #bridges > 1 then
    -- networks do not reach each other
    for _, net in ipairs(networks) do
      add('    iifname "%s" oifname { %s } oifname != "%s" drop', net.bridge, table.concat(bridges, ", "), net.bridge)
    end
  end
  add("  }")
  local elements = port_map_texts(networks)
  for _, protocol in ipairs { "tcp", "udp" } do
    for _, keyed in ipairs { { "", "inet_service" }, { "_ip", "ipv4_addr . inet_service" } } do
      local map = "ports_" .. protocol .. keyed[1]
      add("  map %s {", map)
      add("    type %s : ipv4_addr . inet_service;", keyed[2])
      if elements[map] then add("    elements = { %s }", table.concat(elements[map], ", ")) end
      add("  }")
    end
  end
  add("  chain ports {")
  -- an address's own ports first
  for _, protocol in ipairs { "tcp", "udp" } do
    add("    dnat ip to ip daddr . %s dport map @ports_%s_ip", protocol, protocol)
    add("    dnat ip to %s dport map @ports_%s", protocol, protocol)
  end
  add("  }")
  add("  chain prerouting {")
  add("    type nat hook prerouting priority dstnat; policy accept;")
  add("    fib daddr type local jump ports")
  add("  }")
  add("  chain output {")
  add("    type nat hook output priority -100; policy accept;")
  add("    fib daddr type local jump ports")
  add("  }")
  add("  chain postrouting {")
  add("    type nat hook postrouting priority srcnat; policy accept;")
  for _, net in ipairs(networks) do
    add('    ip saddr %s oifname != "%s" masquerade', net.subnet, net.bridge)
    -- published ports reached through the host's loopback
    add('    ip saddr 127.0.0.0/8 oifname "%s" masquerade', net.bridge)
    -- ... and from a container of the same bridge (hairpin): without this
    -- the answer would go straight back over the bridge, unNATed
    add('    ip saddr %s oifname "%s" ct status dnat masquerade', net.subnet, net.bridge)
  end
  add("  }")
  add("}")
  return table.concat(lines, "\n") .. "\n"
end

-- Make lbox's table what `networks` say, whole, in one transaction.
local function apply_rules(networks)
  local name = M.table_name()
  if #networks == 0 then
    try("cannot remove lbox's nftables table", core.nft("add table ip " .. name .. "\ndelete table ip " .. name .. "\n"))
    return
  end
  try("cannot write lbox's nftables rules", core.nft(M.ruleset(networks)))
end

-- Add ("add") or delete ("delete") the map elements of published ports,
-- in one transaction. When the kernel refuses (the table missing after a
-- reboot or an older lbox's, an element left behind), the whole table
-- is rewritten from `networks`, which already say what should be.
-- @return whether it was
local function publish(op, networks, elements)
  if #elements == 0 or core.nft_elements(op, "ip", M.table_name(), elements) then return false end
  apply_rules(networks)
  return true
end

--- The host end of container `id`'s veth.
function M.veth_name(id)
  return M.VETH_PREFIX .. id:sub(1, 11)
end

-- Forget the leases of containers whose owner is gone. @return the map
-- elements of their published ports, to delete
local function sweep(networks)
  local swept = {}
  for _, net in ipairs(networks) do
    local changed = false
    for address, lease in pairs(net.leases) do
      if not state.owned(lease.id) then
        if link_exists(M.veth_name(lease.id)) then core.link_del(M.veth_name(lease.id)) end
        table.move(port_elements(address, lease.ports), 1, #(lease.ports or {}), #swept + 1, swept)
        net.leases[address] = nil
        changed = true
      end
    end
    if changed then write(net) end
  end
  return swept
end

-- /etc/hosts of every container of `net`: its own lines, then its peers'.
local function write_hosts(net)
  local entries = {}
  for address, lease in pairs(net.leases) do entries[#entries + 1] = { address = address, lease = lease } end
  table.sort(entries, function(a, b) return M.parse_address(a.address) < M.parse_address(b.address) end)
  for _, entry in ipairs(entries) do
    local lines = { "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback" }
    for _, other in ipairs(entries) do
      local names = { other.lease.hostname }
      if other.lease.name and other.lease.name ~= other.lease.hostname then names[#names + 1] = other.lease.name end
      lines[#lines + 1] = other.address .. "\t" .. table.concat(names, " ")
    end
    -- in place: the container sees this file through a bind mount of it
    local f = io.open(state.dir(entry.lease.id) .. "/hosts", "w")
    if f then
      f:write(table.concat(lines, "\n"), "\n")
      f:close()
    end
  end
end

-- The host's resolvers, as docker: loopback ones cannot be reached from
-- the container's namespace, so without others it gets public ones.
function M.resolv_conf(text)
  local out, servers = {}, 0
  for line in (text or ""):gmatch("[^\n]*") do
    local server = line:match("^%s*nameserver%s+(%S+)")
    if server and (server:match("^127%.") or server == "::1") then
      line = nil
    elseif server then
      servers = servers + 1
    end
    if line and line ~= "" then out[#out + 1] = line end
  end
  if servers == 0 then
    out[#out + 1] = "nameserver 8.8.8.8"
    out[#out + 1] = "nameserver 8.8.4.4"
  end
  return table.concat(out, "\n") .. "\n"
end

-- Networks ----------------------------------------------------------------

local NAME_RULE = "use letters, digits, '_', '.', '-'"

local function valid_name(name)
  return type(name) == "string" and name:match("^[%w][%w_.-]*$") ~= nil and #name <= 64
end

local function check_name(name)
  if not valid_name(name) then errors.raise(string.format("network name %q: %s", tostring(name), NAME_RULE)) end
end

--- What subnet base/prefix overlaps: another network or one of the host's
-- routes (other than the default) | nil when it is free.
function M.clash(base, prefix, existing, bridge)
  local own = { [bridge or ""] = true }
  for _, net in ipairs(existing) do
    own[net.bridge] = true
    local other_base, other_prefix = M.parse_subnet(net.subnet)
    if overlaps(base, prefix, other_base, other_prefix) then
      return string.format("network %s (%s)", net.name, net.subnet)
    end
  end
  for _, route in ipairs(host_routes(own)) do
    if overlaps(base, prefix, route[1], route[2]) then
      return string.format("the host's route to %s/%d on %s", M.format_address(route[1]), route[2], route[3])
    end
  end
end

-- The default network's subnet: the first free /16 from 172.29.0.0 down.
local function default_subnet(existing)
  local first = M.parse_address(M.DEFAULT.subnet:match("^[%d.]+"))
  for i = 0, 9 do
    local base = first - i * 65536
    if not M.clash(base, 16, existing) then return M.format_address(base) .. "/16" end
  end
  errors.raise("no free subnet for the default network in 172.20.0.0/14-172.29.0.0/16: free one")
end

-- The first free /24 of 172.30.0.0/15, for networks made without --subnet.
local function free_subnet(existing)
  local first = M.parse_address("172.30.0.0")
  for i = 0, 511 do
    local base = first + i * 256
    if not M.clash(base, 24, existing) then return M.format_address(base) .. "/24" end
  end
  errors.raise("no free subnet left in 172.30.0.0/15: give one with --subnet")
end

-- The record of a new network (checked against the host's routes and the
-- other networks); nothing is made yet.
local function plan(name, subnet, gateway, existing, bridge)
  local base, prefix = M.parse_subnet(subnet)
  if not base then errors.raise(string.format("--subnet %s: %s", subnet, prefix)) end
  local size = 1 << (32 - prefix)
  local gw
  if gateway then
    gw = M.parse_address(gateway)
    if not gw then errors.raise(string.format("--gateway %s: not an IPv4 address", gateway)) end
    if gw <= base or gw >= base + size - 1 then
      errors.raise(string.format("--gateway %s: not a host address of %s", gateway, subnet))
    end
  else
    gw = base + 1
  end
  local clash = M.clash(base, prefix, existing, bridge)
  if clash then errors.raise(string.format("--subnet %s overlaps %s", subnet, clash)) end
  return {
    name = name, subnet = subnet, gateway = M.format_address(gw), created = os.time(), leases = {},
    bridge = bridge or (M.BRIDGE_PREFIX .. fs.random_hex(4)),
  }
end

local function create_locked(name, subnet, gateway, bridge)
  local networks = all_networks()
  for _, net in ipairs(networks) do
    if net.name == name then errors.raise(string.format("network %s already exists", name)) end
  end
  subnet = subnet or free_subnet(networks)
  local net = plan(name, subnet, gateway, networks, bridge)
  -- recorded first: a bridge is never made that no file names
  write(net)
  local ok, err = pcall(function()
    ensure_bridge(net)
    networks[#networks + 1] = net
    apply_rules(networks)
  end)
  if not ok then
    os.remove(path_of(name))
    core.link_del(net.bridge)
    error(err, 0)
  end
  return net
end

--- Create network `name` (its bridge too). opts: subnet ("A.B.C.D/N";
-- default: the first free /24 of 172.30.0.0/15), gateway (default: the
-- subnet's first address).
-- @return its record { name, subnet, gateway, bridge, leases }
function M.create(name, opts)
  check_name(name)
  if M.RESERVED[name] or name == M.DEFAULT.name then
    errors.raise(string.format("network name %q is reserved", name))
  end
  opts = opts or {}
  if opts.gateway and not opts.subnet then errors.raise("--gateway needs a --subnet") end
  return locked(create_locked, name, opts.subnet, opts.gateway)
end

--- Forget the leases (and veths, and rules) of containers whose owner
-- died: what the next start would do.
function M.sweep()
  if not fs.kind(M.dir()) then return end
  locked(function()
    local networks = all_networks()
    publish("delete", networks, sweep(networks))
  end)
end

--- Every network's record, by name; the leases of dead containers dropped.
function M.list()
  return locked(function()
    local networks = all_networks()
    publish("delete", networks, sweep(networks))
    return networks
  end)
end

--- The record of network `name`, or raises a user error.
function M.inspect(name)
  for _, net in ipairs(M.list()) do
    if net.name == name then return net end
  end
  errors.raise(string.format("no such network: %s", tostring(name)))
end

--- Remove network `name` and its bridge; refused while a container uses it,
-- and for the predefined ones (bridge, host, none), as docker, unless
-- `opts.predefined` (the default bridge goes with the store it belongs to:
-- a throwaway store's, a spec run's).
function M.remove(name, opts)
  -- as docker's predefined networks, in use or not
  if M.RESERVED[name] or (name == M.DEFAULT.name and not (opts and opts.predefined)) then
    errors.raise(string.format("%s is a pre-defined network and cannot be removed", name))
  end
  return locked(function()
    local networks = all_networks()
    sweep(networks)
    for i, net in ipairs(networks) do
      if net.name == name then
        local users = {}
        for _, lease in pairs(net.leases) do users[#users + 1] = lease.name or lease.id:sub(1, 12) end
        if #users > 0 then
          table.sort(users)
          errors.raise(string.format("network %s is in use by container %s", name, table.concat(users, ", ")))
        end
        table.remove(networks, i)
        apply_rules(networks)
        if link_exists(net.bridge) then try("cannot remove bridge " .. net.bridge, core.link_del(net.bridge)) end
        os.remove(path_of(name))
        return true
      end
    end
    errors.raise(string.format("no such network: %s", tostring(name)))
  end)
end

-- Containers ---------------------------------------------------------------

-- Raises a user error about field `field` of the spec, as lbox.spec's
-- complainers do when no labels name it otherwise.
local function field_error(field, fmt, ...)
  errors.raise(string.format("%s: " .. fmt, field, ...))
end

--- Check an attachment, the spec's `network` field: a network's name, or
-- { name = "bridge", ports = { { host_port = 8080, container_port = 80,
-- protocol = "tcp", host_ip = "127.0.0.1" } } }, without touching
-- anything; raises through `bad(field, fmt, ...)` (lbox.spec's
-- complainer; default: a user error naming the spec's field).
-- @return a normalized copy
function M.check_attachment(attachment, bad)
  bad = bad or field_error
  if type(attachment) == "string" then attachment = { name = attachment } end
  if type(attachment) ~= "table" then bad("network", "a network's name or a table expected") end
  local name = attachment.name or M.DEFAULT.name
  if name ~= M.DEFAULT.name and not valid_name(name) then
    bad("network", "network name %q: %s", tostring(name), NAME_RULE)
  end
  if M.RESERVED[name] then bad("network", "%q is not a network's name", name) end
  local out = { name = name, ports = {} }
  local seen = {}
  for i, port in ipairs(attachment.ports or {}) do
    if type(port) ~= "table" then bad("network.ports", "port %d must be a table", i) end
    local protocol = port.protocol or "tcp"
    if protocol ~= "tcp" and protocol ~= "udp" then
      bad("network.ports", "protocol %q: use tcp or udp", tostring(protocol))
    end
    for _, field in ipairs { "host_port", "container_port" } do
      local v = port[field]
      -- host port 0: any free one, chosen at the start (docker's -P)
      local low = field == "host_port" and 0 or 1
      if math.type(v) ~= "integer" or v < low or v > 65535 then
        bad("network.ports", "port %s is out of range (1-65535)", tostring(v))
      end
    end
    if port.host_ip ~= nil and not M.parse_address(port.host_ip) then
      bad("network.ports", "%q is not an IPv4 address", tostring(port.host_ip))
    end
    local key = protocol .. "/" .. port.host_port
    if seen[key] and port.host_port ~= 0 then
      bad("network.ports", "port %d/%s is published twice", port.host_port, protocol)
    end
    seen[key] = true
    out.ports[i] = { host_ip = port.host_ip, host_port = port.host_port, container_port = port.container_port,
                     protocol = protocol }
  end
  return out
end

-- Is host port `port` taken by a lease of `networks`?
local function port_owner(networks, port)
  for _, net in ipairs(networks) do
    for _, lease in pairs(net.leases) do
      for _, p in ipairs(lease.ports or {}) do
        if p.host_port == port.host_port and p.protocol == port.protocol
          and (not p.host_ip or not port.host_ip or p.host_ip == port.host_ip) then
          return lease
        end
      end
    end
  end
end

-- Is `port` bound by a socket of the host (a listening one for tcp)? Its
-- traffic would go to the container instead: refused, as docker's proxy
-- would fail to bind it.
local function host_port_taken(port)
  local taken, err = core.port_in_use(port.protocol, port.host_port)
  if taken == nil then errors.raise("cannot check port " .. port.host_port .. ": " .. err) end
  return taken
end

local function free_address(net)
  local base, prefix = M.parse_subnet(net.subnet)
  local gateway = M.parse_address(net.gateway)
  for n = base + 1, base + (1 << (32 - prefix)) - 2 do
    local address = M.format_address(n)
    if n ~= gateway and not net.leases[address] then return address, prefix end
  end
end

-- Why a container could not join the network of `attachment`, among
-- `networks` (the leases of dead containers already left out), raised
-- through `bad(field, fmt, ...)`. @return the network's record | nil (the
-- default one, made on first use), the address it would get, its prefix
local function admission(networks, attachment, bad)
  local net
  for _, candidate in ipairs(networks) do
    if candidate.name == attachment.name then net = candidate end
  end
  if not net and attachment.name ~= M.DEFAULT.name then
    bad("network", "no such network %s (see lbox network ls)", attachment.name)
  end
  for _, port in ipairs(attachment.ports) do
    local owner = port.host_port ~= 0 and port_owner(networks, port)
    if owner then
      bad("network.ports", "%d/%s: the port is already published by container %s", port.host_port, port.protocol,
        owner.name or owner.id:sub(1, 12))
    end
    if port.host_port ~= 0 and host_port_taken(port) then
      bad("network.ports", "%d/%s: the port is already in use on the host", port.host_port, port.protocol)
    end
  end
  if not net then
    default_subnet(networks) -- raises when none is free
    return nil
  end
  local address, prefix = free_address(net)
  if not address then bad("network", "network %s is full (%s)", net.name, net.subnet) end
  return net, address, prefix
end

--- Check, reading only, that a container could join the network of
-- `attachment` (see check_attachment) now: it exists (or is the default
-- one, made on first use), has a free address, its ports are free. For
-- lbox.spec's plan, before anything is made; the start step checks again
-- under the networks' lock. Raises through `bad(field, fmt, ...)`
-- (default: naming the spec's field).
function M.check_admission(attachment, bad)
  local networks = fs.kind(M.dir()) and all_networks() or {}
  -- as the next sweep will: the leases of containers whose owner is gone
  for _, net in ipairs(networks) do
    for address, lease in pairs(net.leases) do
      if not state.owned(lease.id) then net.leases[address] = nil end
    end
  end
  admission(networks, attachment, bad or field_error)
end

-- docker's range for the host ports it chooses (-P)
local EPHEMERAL_PORTS = { first = 32768, last = 60999 }

-- `ports` with each host port 0 made a free one: taken by no lease of
-- `networks` nor by a socket of the host. A copy: the spec keeps its 0s,
-- so that a restart chooses again. Under the networks' lock.
local function chosen_ports(networks, ports)
  local out, picked = {}, {}
  for i, port in ipairs(ports) do
    out[i] = port
    if port.host_port == 0 then
      local choice
      for n = EPHEMERAL_PORTS.first, EPHEMERAL_PORTS.last do
        local candidate = { host_ip = port.host_ip, host_port = n, container_port = port.container_port,
                            protocol = port.protocol }
        if not picked[port.protocol .. "/" .. n] and not port_owner(networks, candidate)
          and not host_port_taken(candidate) then
          choice = candidate
          break
        end
      end
      if not choice then
        field_error("network.ports", "no free host port for %d/%s", port.container_port, port.protocol)
      end
      picked[port.protocol .. "/" .. choice.host_port] = true
      out[i] = choice
    else
      picked[port.protocol .. "/" .. port.host_port] = true
    end
  end
  return out
end

local function lease_locked(c, attachment)
  local networks = all_networks()
  local swept = sweep(networks)
  local net, address, prefix = admission(networks, attachment, field_error)
  local ports = chosen_ports(networks, attachment.ports)
  if not net then
    net = create_locked(M.DEFAULT.name, default_subnet(networks), nil, M.default_bridge())
    networks[#networks + 1] = net
    address, prefix = free_address(net)
  end
  ensure_bridge(net)
  net.leases[address] = { id = c.id, name = c.spec.name, hostname = c.spec.hostname, ports = ports }
  write(net)
  -- from here on, detach gives the lease back
  c.network_lease = { network = net.name, address = address, bridge = net.bridge }
  state.update(c.id, { network = net.name, address = address, ports = ports })
  -- the table holds the networks and the published ports only
  if not publish("delete", networks, swept) then publish("add", networks, port_elements(address, ports)) end
  write_hosts(net)
  return { address = address, prefix = prefix, gateway = net.gateway }
end

--- Join container `c` (its directory claimed, its process not made yet)
-- to the network its spec names: a lease of an address, its and its
-- peers' /etc/hosts, its /etc/resolv.conf and the rules for its ports.
-- Pushes on `undo` (an lbox.undo list) what gives them back (detach).
-- @return { address, prefix, gateway }, for its init (its eth0 step)
function M.attach(c, undo)
  undo:push("leave network " .. c.spec.network.name, M.detach, c)
  local config = locked(lease_locked, c, c.spec.network)
  fs.write_file(state.dir(c.id) .. "/resolv.conf", M.resolv_conf(fs.read_file("/etc/resolv.conf")))
  return config
end

-- The veth goes with the container's network namespace, which the kernel
-- dismantles in the background once its last process has ended: it is
-- deleted only while the process lives on (a failed start), since deleting
-- it would cost a start-and-stop some 25 ms (its RCU grace period).
local function unlink(c, veth)
  if c.status ~= nil or not link_exists(veth) then return true end
  return core.link_del(veth)
end

--- Give its veth to attached container `c`, once its process exists and
-- waits: the inner end is eth0 in its network namespace, the host end
-- on the network's bridge. Pushes on `undo` the veth's removal, once made.
function M.link(c, undo)
  local veth, bridge = M.veth_name(c.id), c.network_lease.bridge
  try("cannot create the container's veth", core.veth_add(veth, "eth0", c.pid))
  undo:push("delete the container's veth", unlink, c, veth)
  try("cannot attach the veth to " .. bridge, core.link_set(veth, { master = bridge, up = true }))
end

--- Undo `attach`: the lease, the hosts entries, the rules. Safe to call
-- more than once.
function M.detach(c)
  local lease = c.network_lease
  if not lease then return true end
  c.network_lease = nil
  return locked(function()
    local networks = all_networks()
    local stale = {}
    for _, net in ipairs(networks) do
      local mine = net.leases[lease.address]
      if net.name == lease.network and mine and mine.id == c.id then
        stale = port_elements(lease.address, mine.ports)
        net.leases[lease.address] = nil
        write(net)
        write_hosts(net)
      end
    end
    local swept = sweep(networks)
    publish("delete", networks, table.move(swept, 1, #swept, #stale + 1, stale))
    return true
  end)
end

--- In the container's init (its own network namespace): eth0 up with its
-- address, and the default route through the gateway.
function M.configure_inside(config)
  try("cannot address eth0", core.addr_add("eth0", config.address, config.prefix))
  try("cannot bring up eth0", core.link_set("eth0", { up = true }))
  try("cannot add the default route", core.route_add("0.0.0.0", 0, config.gateway, "eth0"))
end

return M

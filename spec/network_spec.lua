-- Networks: the netlink and nftables primitives, lbox network, containers
-- on bridges, published ports, outbound NAT, the allocator, and sweeping.
-- Traffic goes only to addresses made here: the containers', the bridges',
-- 127.0.0.1, and a stand-in "outside" host in a network namespace of the
-- spec's own (10.250.0.2, reached through the host's 10.250.0.1 on a veth).
local core = require "lbox.core"
local helper = require "helper"
local lfs = require "lfs"
local network = require "lbox.network"

local OUTSIDE_HOST, OUTSIDE_PEER = "lbxs-h", "lbxs-o"
local HOST_ADDRESS, OUTSIDE_ADDRESS = "10.250.0.1", "10.250.0.2"

local function lbox(args) return helper.lbox_run(args) end

local function ok(r)
  assert.are.equal(0, r.code, r.err)
  return r.out
end

-- A command's one-line failure: exit 125, one line naming `pattern`.
local function refused(r, pattern)
  assert.are.equal(125, r.code, r.out .. r.err)
  assert.matches("^lbox: error: [^\n]*" .. pattern .. "[^\n]*\n$", r.err)
end

-- The outside host: a process in a network namespace of its own, with a
-- veth to the host. @return it, to `stop`
local function outside_host()
  local proc = helper.start { "/usr/bin/unshare", "--net", "/bin/sleep", "120" }
  -- the namespace itself, not /proc/PID/net/dev, whose counters change
  -- while unshare has not yet made it (a veth's peer then landed on the host)
  local mine = lfs.symlinkattributes("/proc/self/ns/net", "target")
  assert.is_true(helper.eventually(function()
    local theirs = lfs.symlinkattributes("/proc/" .. proc.pid .. "/ns/net", "target")
    return theirs ~= nil and theirs ~= mine
  end, 5), "the outside host has no network namespace of its own")
  assert(core.veth_add(OUTSIDE_HOST, OUTSIDE_PEER, proc.pid))
  assert(core.addr_add(OUTSIDE_HOST, HOST_ADDRESS, 30))
  assert(core.link_set(OUTSIDE_HOST, { up = true }))
  local setup = helper.exec { "/usr/bin/nsenter", "-t", tostring(proc.pid), "-n", "/bin/sh", "-c",
    "ip link set lo up && ip link set " .. OUTSIDE_PEER .. " up && ip addr add " .. OUTSIDE_ADDRESS .. "/30 dev "
      .. OUTSIDE_PEER }
  assert.are.equal(0, setup.code, setup.err)
  function proc.run(script, timeout)
    return helper.exec({ "/usr/bin/timeout", "10", "/usr/bin/nsenter", "-t", tostring(proc.pid), "-n",
      "/bin/busybox", "sh", "-c", script }, { timeout = timeout or 15 })
  end
  function proc.stop()
    core.link_del(OUTSIDE_HOST)
    core.kill(proc.pid, core.SIGKILL)
    helper.finish(proc)
  end
  return proc
end

describe("network primitives (in a network namespace of their own)", function()
  -- Run `fn` in a child in a new network namespace; its result is its exit code.
  local function in_new_netns(fn)
    local pid = assert(core.clone(core.CLONE_NEWNET))
    if pid == 0 then
      local good, result = pcall(fn)
      core._exit(good and result or 99)
    end
    local _, how, code = core.waitpid(pid)
    return how == "exited" and code or -1
  end

  it("make a bridge, a veth on it, addresses and routes, and delete them", function()
    assert.are.equal(0, in_new_netns(function()
      assert(core.bridge_add("tbr0"))
      assert(core.link_set("tbr0", { up = true }))
      assert(core.addr_add("tbr0", "10.99.0.1", 24))
      assert(core.veth_add("tv0", "tp0"))
      assert(core.link_set("tv0", { master = "tbr0", up = true }))
      assert(core.link_set("tp0", { name = "tq0" }))
      assert(core.route_add("10.98.0.0", 16, "10.99.0.5", "tbr0"))
      assert(core.link_del("tv0"))
      local gone, _, errno = core.link_set("tq0", { up = true }) -- went with its peer
      assert(gone == nil and errno == 19)
      assert(core.link_del("tbr0"))
      return 0
    end))
  end)

  it("a veth's peer can be made in another process's namespace", function()
    local holder = helper.start { "/usr/bin/unshare", "--net", "/bin/sleep", "30" }
    helper.sleep(0.2)
    assert(core.veth_add("lbxt-a", "lbxt-b", holder.pid))
    assert.is_nil(helper.read_file("/sys/class/net/lbxt-b/ifindex"))
    assert(core.link_del("lbxt-a"))
    core.kill(holder.pid, core.SIGKILL)
    helper.finish(holder)
  end)

  it("return the failure triple, and raise on bad arguments", function()
    local value, msg, errno = core.link_del("lbxt-nonesuch")
    assert.are.same({ nil, "link del 'lbxt-nonesuch': No such device", 19 }, { value, msg, errno })
    value, msg, errno = core.nft("bogus")
    assert.is_nil(value)
    assert.matches("^nft: Error: syntax error", msg)
    assert.are.equal(22, errno)
    assert.has_error(function() core.link_del("a/b") end)
    assert.has_error(function() core.link_del(string.rep("x", 16)) end)
    assert.has_error(function() core.addr_add("lo", "300.1.1.1", 24) end)
    assert.has_error(function() core.addr_add("lo", "10.0.0.1", 33) end)
    assert.has_error(function() core.route_add("10.0.0.0", 8, "nope", "lo") end)
    assert.has_error(function() core.link_set("lo") end)
    assert.has_error(function() core.veth_add("a", "b", -1) end)
  end)

  it("add and delete map elements in one transaction, all or none", function()
    assert.are.equal(0, in_new_netns(function()
      assert(core.nft("table ip lbxs-el { map m { type ipv4_addr . inet_service : ipv4_addr . inet_service; }\n"
        .. "map p { type inet_service : ipv4_addr; }; }\n"))
      local function key(address, port) return string.pack(">I4I2", address, port) .. "\0\0" end
      local one = { "m", key(0x7f000001, 8080), key(0x0a000002, 80) }
      local two = { "p", string.pack(">I2", 8081), string.pack(">I4", 0x0a000003) }
      assert(core.nft_elements("add", "ip", "lbxs-el", { one, two }))
      local listed = assert(core.nft("list table ip lbxs-el\n"))
      assert(listed:find("127.0.0.1 . 8080 : 10.0.0.2 . 80", 1, true), listed)
      assert(listed:find("8081 : 10.0.0.3", 1, true), listed)
      -- a key already there: EEXIST, and the new element of the same batch is not added
      local three = { "p", string.pack(">I2", 8082), string.pack(">I4", 0x0a000004) }
      assert.are.same({ nil, "nft add element 'lbxs-el': File exists", 17 },
        { core.nft_elements("add", "ip", "lbxs-el", { three, two }) })
      assert.is_nil(assert(core.nft("list table ip lbxs-el\n")):find("8082", 1, true))
      assert(core.nft_elements("delete", "ip", "lbxs-el", { { "m", one[2] }, { "p", two[2] } }))
      assert.is_nil(assert(core.nft("list table ip lbxs-el\n")):find("elements", 1, true))
      assert.are.same({ nil, "nft delete element 'lbxs-el': No such file or directory", 2 },
        { core.nft_elements("delete", "ip", "lbxs-el", { { "p", two[2] } }) })
      assert.are.equal(2, select(3, core.nft_elements("add", "ip", "lbxs-nonesuch", { two })))
      -- a key of the wrong size: the kernel's EINVAL
      assert.are.equal(22, select(3, core.nft_elements("add", "ip", "lbxs-el", { { "p", "\1", two[3] } })))
      assert.has_error(function() core.nft_elements("replace", "ip", "lbxs-el", { two }) end)
      assert.has_error(function() core.nft_elements("add", "arp", "lbxs-el", { two }) end)
      assert.has_error(function() core.nft_elements("add", "ip", "lbxs-el", {}) end)
      assert.has_error(function() core.nft_elements("add", "ip", "lbxs-el", { { "p", 8081 } }) end)
      assert.has_error(function() core.nft_elements("add", "ip", "lbxs-el", { { "p", string.rep("x", 65) } }) end)
      return 0
    end))
  end)
end)

describe("lbox.network", function()
  it("replaces loopback resolvers as docker does", function()
    assert.are.equal("search example\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n",
      network.resolv_conf("nameserver 127.0.0.53\nsearch example\n"))
    assert.are.equal("nameserver 192.0.2.53\n", network.resolv_conf("nameserver 192.0.2.53\nnameserver ::1\n"))
  end)

  it("checks subnets", function()
    assert.are.same({ nil, "not a network address (did you mean 10.1.0.0/16?)" },
      { network.parse_subnet("10.1.2.3/16") })
    assert.is_nil(network.parse_subnet("10.1.0.0/33"))
    assert.is_nil(network.parse_subnet("10.256.0.0/16"))
    assert.are.same({ 0x0a010000, 16 }, { network.parse_subnet("10.1.0.0/16") })
  end)
end)

describe("lbox network and containers on networks", function()
  local before
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  it("create, ls, inspect, rm; rm refused while a container uses it", function()
    ok(lbox { "network", "create", "--subnet", "10.251.0.0/24", "spec-a" })
    assert.matches("spec%-a +10%.251%.0%.0/24 +10%.251%.0%.1 +lbr%-%x+ +0", ok(lbox { "network", "ls" }))
    local inspected = ok(lbox { "network", "inspect", "spec-a" })
    assert.matches('"subnet":"10.251.0.0/24"', inspected)
    local bridge = inspected:match('"bridge":"(lbr%-%x+)"')
    assert.are.equal("10.251.0.1/24", helper.sh("ip -o -4 addr show dev " .. bridge .. " | awk '{print $4}'").out:match("%S+"))
    ok(lbox { "run", "-d", "--name", "spec-user", "--network", "spec-a", "sleep", "600" })
    refused(lbox { "network", "rm", "spec-a" }, "network spec%-a is in use by container spec%-user")
    ok(lbox { "rm", "-f", "spec-user" })
    assert.are.equal("spec-a\n", ok(lbox { "network", "rm", "spec-a" }))
    assert.is_nil(helper.read_file("/sys/class/net/" .. bridge .. "/ifindex"))
  end)

  it("refuses bad input with one line, exit 125, and leaves nothing", function()
    refused(lbox { "network", "create", "--subnet", "10.251.0.5/24", "spec-b" }, "not a network address")
    refused(lbox { "network", "create", "--subnet", "banana", "spec-b" }, "not a subnet")
    refused(lbox { "network", "create", "--subnet", "10.251.0.0/24", "--gateway", "10.9.9.9", "spec-b" },
      "not a host address")
    local host_route = helper.read_file("/proc/net/route"):match("\n%S+%s+(%x+)%s+%x+%s+%x+%s+%d+%s+%d+%s+%d+%s+FFFFFF00")
    if host_route then
      local n = tonumber(host_route, 16)
      local subnet = string.format("%d.%d.%d.0/24", n & 255, n >> 8 & 255, n >> 16 & 255)
      refused(lbox { "network", "create", "--subnet", subnet, "spec-b" }, "overlaps the host's route")
    end
    ok(lbox { "network", "create", "--subnet", "10.251.0.0/24", "spec-b" })
    refused(lbox { "network", "create", "--subnet", "10.251.0.0/16", "spec-c" }, "overlaps network spec%-b")
    refused(lbox { "network", "create", "--subnet", "10.252.0.0/24", "spec-b" }, "already exists")
    refused(lbox { "network", "create", "host" }, "reserved")
    refused(lbox { "network", "create", "a b" }, "network name \"a b\"")
    refused(lbox { "run", "--network", "a/b", "true" }, "network name \"a/b\"")
    refused(lbox { "network", "rm", "spec-nonesuch" }, "no such network")
    -- as docker's predefined networks: even the default one, made and unused
    ok(lbox { "run", "--network", "bridge", "true" })
    for _, name in ipairs { "bridge", "host", "none" } do
      refused(lbox { "network", "rm", name }, name .. " is a pre%-defined network and cannot be removed")
    end
    refused(lbox { "run", "--network", "spec-nonesuch", "true" }, "no such network")
    refused(lbox { "run", "-p", "70000:80", "true" }, "out of range")
    refused(lbox { "run", "-p", "80", "true" }, "use %[IP:%]HOSTPORT:PORT")
    refused(lbox { "run", "-p", "8080:80/sctp", "true" }, "use tcp or udp")
    refused(lbox { "run", "--network", "none", "-p", "8080:80", "true" }, "no ports of its own")
    ok(lbox { "run", "-d", "--name", "spec-p", "--network", "spec-b", "-p", "18080:80", "sleep", "600" })
    refused(lbox { "run", "--network", "spec-b", "-p", "18080:81", "true" }, "already published by container spec%-p")
    ok(lbox { "rm", "-f", "spec-p" })
    -- a listener of the host's: no connection is ever made to it
    local listener = helper.start { "/bin/busybox", "nc", "-l", "-p", "18086" }
    finally(function()
      if core.kill(listener.pid, core.SIGKILL) then helper.finish(listener) end
    end)
    assert.is_true(helper.eventually(function()
      local sockets = helper.read_file("/proc/net/tcp") .. helper.read_file("/proc/net/tcp6")
      return sockets:find(string.format(":%04X [0:]+ 0A", 18086)) ~= nil
    end, 5), "the host's listener did not start")
    refused(lbox { "run", "-p", "18086:80", "true" }, "18086/tcp: the port is already in use on the host")
    ok(lbox { "network", "rm", "spec-b" })
    -- a /29 holds five containers besides its gateway
    ok(lbox { "network", "create", "--subnet", "10.251.1.0/29", "spec-small" })
    local ids = {}
    for i = 1, 5 do
      ids[i] = ok(lbox { "run", "-d", "--network", "spec-small", "sleep", "600" }):match("%x+")
    end
    refused(lbox { "run", "--network", "spec-small", "true" }, "network spec%-small is full")
    ok(lbox { "rm", "-f", table.unpack(ids) })
    ok(lbox { "network", "rm", "spec-small" })
  end)

  it("leaves nothing when joining fails half-way (its veth's name is taken)", function()
    local lbox_api = require "lbox"
    -- names of this run's own: other engineers' network specs may run at the same time
    local id = require("lbox.fs").random_hex(32)
    assert(core.veth_add(network.veth_name(id), "lbxs-" .. id:sub(1, 8)))
    local box = lbox_api.container { id = id, network = { name = "bridge", ports = { { host_port = 18084,
      container_port = 80 } } }, command = { "true" } }
    local started, err = pcall(box.start, box)
    assert(core.link_del(network.veth_name(id)))
    assert.is_false(started)
    assert.matches("cannot create the container's veth: veth add '" .. network.veth_name(id) .. "': File exists",
      tostring(err))
    assert.are.same({}, network.inspect("bridge").leases)
  end)

  it("completes a bridge left half-made (no address, down)", function()
    ok(lbox { "network", "create", "--subnet", "10.251.5.0/24", "spec-half" })
    local bridge = network.inspect("spec-half").bridge
    assert(core.link_del(bridge))
    assert(core.bridge_add(bridge))
    local out = ok(lbox { "run", "--network", "spec-half", "ping", "-c", "1", "-W", "2", "10.251.5.1" })
    assert.matches("1 packets received", out)
    ok(lbox { "network", "rm", "spec-half" })
  end)

  it("checks the spec's network field before anything is made", function()
    local lbox_api = require "lbox"
    for _, case in ipairs {
      { 42, "^network: a network's name or a table expected" },
      { "host", '^network: "host" is not a network\'s name' },
      { { name = "x", ports = { { host_port = 80 } } }, "^network%.ports: port nil is out of range" },
      { { ports = { { host_port = 80, container_port = 80, protocol = "icmp" } } }, 'protocol "icmp"' },
    } do
      local made, err = pcall(lbox_api.container, { command = { "true" }, network = case[1] })
      assert.is_false(made)
      assert.matches(case[2], tostring(err))
    end
    local made, err = pcall(lbox_api.container, { command = { "true" }, network = "bridge", namespaces = { "pid" } })
    assert.is_false(made)
    assert.matches("needs a network namespace of its own", tostring(err))
    -- what the host's networks cannot give: refused by the plan, named as the labels say
    made, err = pcall(lbox_api.container, { command = { "true" }, network = "spec-nonesuch" })
    assert.is_false(made)
    assert.matches("^network: no such network spec%-nonesuch", tostring(err))
    made, err = pcall(lbox_api.container, { command = { "true" }, network = "spec-nonesuch" }, { network = "--net" })
    assert.is_false(made)
    assert.matches("^%-%-net: no such network spec%-nonesuch", tostring(err))
  end)

  it("gives back the lease and the veth when a later start step fails, before the container's end", function()
    local lbox_api = require "lbox"
    local box = lbox_api.container { command = { "true" }, network = { ports = { { host_port = 18087,
      container_port = 80 } } } }
    local seen = {}
    box:before("release_child", "fail", function(c)
      seen.veth = helper.read_file("/sys/class/net/" .. network.veth_name(c.id) .. "/ifindex")
      seen.lease = network.inspect("bridge").leases[c.spec.network_config.address]
      seen.rules = table.concat(helper.nft_rules(), "\n")
      error("spec: a step after the veth failed", 0)
    end)
    local names = box:steps()
    -- the `count` steps from `name` on (by name: other features add steps)
    local function from(name, count)
      for i, step in ipairs(names) do
        if step == name then return { table.unpack(names, i, i + count - 1) } end
      end
    end
    assert.are.same({ "rootfs", "network", "cgroup" }, from("rootfs", 3))
    assert.are.same({ "join_cgroup", "veth", "fail", "release_child" }, from("join_cgroup", 4))
    local started, err = pcall(box.start, box)
    assert.is_false(started)
    assert.are.equal("spec: a step after the veth failed", err)
    assert.truthy(seen.veth, "no veth before release_child")
    assert.are.equal(box.id, seen.lease and seen.lease.id)
    assert.matches("dport 18087 dnat", seen.rules)
    -- the veth is gone (deleted while the process lived, or with its namespace)
    assert.is_nil(helper.read_file("/sys/class/net/" .. network.veth_name(box.id) .. "/ifindex"))
    assert.are.same({}, network.inspect("bridge").leases)
    assert.is_nil(table.concat(helper.nft_rules(), "\n"):match("18087"))
  end)

  it("rewrites its nftables table when it is gone (a reboot, or removed by hand)", function()
    -- this store's table only: lbox-<hash of the spec store>
    local function drop_table() assert(core.nft("delete table ip " .. network.table_name() .. "\n")) end
    local id = ok(lbox { "run", "-d", "-p", "18088:80", "sleep", "600" }):match("%x+")
    local address = network.inspect("bridge").gateway:gsub("%.", "%%."):gsub("1$", "%%d+")
    assert.matches("^tcp dport 18088 dnat to " .. address .. ":80$", table.concat(helper.nft_rules(), "\n"))
    -- its element cannot be deleted: the table is made again, without it
    drop_table()
    ok(lbox { "rm", "-f", id })
    assert.is_nil(table.concat(helper.nft_rules(), "\n"):find("18088", 1, true))
    assert.truthy(core.nft("list chain ip " .. network.table_name() .. " ports\n"))
    -- its element cannot be added: the table is made again, with it
    drop_table()
    id = ok(lbox { "run", "-d", "-p", "18088:80", "sleep", "600" }):match("%x+")
    assert.matches("^tcp dport 18088 dnat to " .. address .. ":80$", table.concat(helper.nft_rules(), "\n"))
    ok(lbox { "rm", "-f", id })
  end)

  it("records a container's network, address and ports for inspect", function()
    local id = ok(lbox { "run", "-d", "-p", "18085:80", "sleep", "600" }):match("%x+")
    local out = ok(lbox { "inspect", id })
    assert.matches('"network":"bridge"', out)
    assert.matches('"address":"[%d.]+"', out)
    assert.matches('"host_port":18085', out)
    ok(lbox { "rm", "-f", id })
  end)

  it("gives a container eth0, a default route, /etc/hosts and /etc/resolv.conf", function()
    local out = ok(lbox { "run", "--network", "bridge", "--hostname", "boxy", "sh", "-c",
      "ip -o -4 addr show dev eth0; ip route; cat /etc/hosts; grep -c '^nameserver 127' /etc/resolv.conf; true" })
    local inspected = ok(lbox { "network", "inspect", "bridge" })
    local gateway = inspected:match('"gateway":"([%d.]+)"')
    local address = out:match("inet (" .. gateway:match("^%d+%.%d+%.") .. "%d+%.%d+)/16")
    assert.is_truthy(address, out)
    assert.matches("default via " .. gateway:gsub("%.", "%%.") .. " dev eth0", out)
    assert.matches(address:gsub("%.", "%%.") .. "\tboxy\n", out)
    assert.matches("\n0\n$", out)
  end)

  it("containers of a network reach each other by name; other networks' do not", function()
    ok(lbox { "network", "create", "--subnet", "10.251.2.0/24", "spec-x" })
    ok(lbox { "network", "create", "--subnet", "10.251.3.0/24", "spec-y" })
    ok(lbox { "run", "-d", "--name", "spec-server", "--network", "spec-x", "sleep", "600" })
    ok(lbox { "run", "-d", "--name", "spec-stranger", "--network", "spec-y", "sleep", "600" })
    local out = ok(lbox { "run", "--network", "spec-x", "sh", "-c", "ping -c 1 -W 2 spec-server" })
    assert.matches("from 10%.251%.2%.2", out)
    local r = lbox { "run", "--network", "spec-y", "ping", "-c", "1", "-W", "1", "10.251.2.2" }
    assert.are.equal(1, r.code, r.out .. r.err)
    -- and the stranger cannot be reached from spec-x either
    r = lbox { "run", "--network", "spec-x", "ping", "-c", "1", "-W", "1", "10.251.3.2" }
    assert.are.equal(1, r.code, r.out .. r.err)
    -- the first one learns the names of those who join after it, and forgets them
    ok(lbox { "run", "-d", "--name", "spec-late", "--network", "spec-x", "sleep", "600" })
    assert.matches("10%.251%.2%.%d+\t%x+ spec%-late\n", ok(lbox { "exec", "spec-server", "cat", "/etc/hosts" }))
    ok(lbox { "rm", "-f", "spec-late" })
    assert.is_nil(ok(lbox { "exec", "spec-server", "cat", "/etc/hosts" }):find("spec-late", 1, true))
    ok(lbox { "rm", "-f", "spec-server", "spec-stranger" })
    ok(lbox { "network", "rm", "spec-x", "spec-y" })
  end)

  it("publishes ports to the outside and to 127.0.0.1, and masquerades outbound", function()
    local outside = outside_host()
    local ok_all, err = pcall(function()
      ok(lbox { "run", "-d", "--name", "spec-web", "-p", "18081:80", "-p", "127.0.0.1:18082:81/udp", "sh", "-c",
        "while true; do echo pong | nc -l -p 80; done" })
      local function reached(run, target)
        return helper.eventually(function()
          return run("nc -w 2 " .. target .. " 18081 </dev/null").out == "pong\n"
        end, 5)
      end
      assert.is_true(reached(outside.run, HOST_ADDRESS), "no answer from the outside through " .. HOST_ADDRESS)
      assert.is_true(reached(function(script) return helper.sh("/bin/busybox " .. script) end, "127.0.0.1"),
        "no answer through 127.0.0.1")
      -- from another container, through its gateway (an address of the host's)
      local gateway = network.inspect("bridge").gateway
      assert.is_true(reached(function(script)
        return helper.lbox_run { "run", "--network", "bridge", "sh", "-c", script }
      end, gateway), "no answer through the gateway " .. gateway)
      -- busybox has no UDP server or client to try it with: the rule, then
      local address = network.inspect("bridge").leases
      local rules = table.concat(helper.nft_rules(), "\n")
      for container_address in pairs(address) do
        assert.matches("ip daddr 127%.0%.0%.1 udp dport 18082 dnat to " .. container_address:gsub("%.", "%%.") .. ":81",
          rules)
      end
      -- outbound: the outside has no route back to 172.29/16, so an answer
      -- proves the container's address was replaced by the host's
      local listener = helper.start { "/usr/bin/timeout", "10", "/usr/bin/nsenter", "-t", tostring(outside.pid),
        "-n", "/bin/busybox", "nc", "-l", "-p", "19000" }
      helper.sleep(0.3)
      ok(lbox { "run", "--network", "bridge", "sh", "-c", "echo via-nat | nc -w 2 " .. OUTSIDE_ADDRESS .. " 19000" })
      assert.are.equal("via-nat\n", helper.finish(listener, 15).out)
      ok(lbox { "rm", "-f", "spec-web" })
    end)
    outside.stop()
    if not ok_all then error(err, 0) end
  end)

  it("publishes UDP ports: datagrams reach the container and its answers come back", function()
    -- busybox has no UDP server: a Lua payload answers each datagram with
    -- "got-" and the datagram (luasocket, loaded here: the container's
    -- root has none); socat sends, to 127.0.0.1 and to the host's address
    -- on the spec's outside host's veth only
    local socket = require "socket"
    local box = require("lbox").container {
      network = { name = "bridge", ports = {
        { host_port = 18090, container_port = 81, protocol = "udp", host_ip = "127.0.0.1" },
        { host_port = 18091, container_port = 81, protocol = "udp" } } },
      command = function()
        local udp = assert(socket.udp())
        assert(udp:setsockname("0.0.0.0", 81))
        while true do
          local data, ip, port = udp:receivefrom()
          if data then udp:sendto("got-" .. data, ip, port) end
        end
      end,
    }
    box:start()
    local outside
    local ok_all, err = pcall(function()
      local function answered(run, address, port)
        -- a bounded loop: the first datagrams may come before the payload binds
        return helper.eventually(function()
          return run(string.format("echo ping | /usr/bin/socat -T 1 - UDP:%s:%d", address, port)).out == "got-ping\n"
        end, 10)
      end
      assert.is_true(answered(helper.sh, "127.0.0.1", 18090), "no answer through 127.0.0.1")
      outside = outside_host()
      assert.is_true(answered(outside.run, HOST_ADDRESS, 18091), "no answer from the outside through " .. HOST_ADDRESS)
      -- published on 127.0.0.1 only: not on the host's other addresses
      assert.are_not.equal("got-ping\n", outside.run("echo ping | /usr/bin/socat -T 1 - UDP:" .. HOST_ADDRESS .. ":18090").out)
    end)
    if outside then outside.stop() end
    box:kill(core.SIGKILL)
    box:wait()
    if not ok_all then error(err, 0) end
  end)

  it("twenty containers started together get twenty addresses, freed on removal", function()
    ok(lbox { "network", "create", "--subnet", "10.251.4.0/24", "spec-many" })
    local procs, ids = {}, {}
    for i = 1, 20 do
      procs[i] = helper.start { helper.lbox, "run", "-d", "--network", "spec-many", "sleep", "60" }
    end
    for i, proc in ipairs(procs) do
      local r = helper.finish(proc, 90)
      assert.are.equal(0, r.code, r.err)
      ids[i] = r.out:match("%x+")
    end
    local leases = network.inspect("spec-many").leases
    local seen = {}
    for address, lease in pairs(leases) do
      assert.matches("^10%.251%.4%.%d+$", address)
      seen[#seen + 1] = lease.id
    end
    table.sort(seen)
    table.sort(ids)
    assert.are.same(ids, seen)
    -- each container has the address its lease says
    local address = next(leases)
    local out = ok(lbox { "exec", leases[address].id, "ip", "-o", "-4", "addr", "show", "dev", "eth0" })
    assert.matches("inet " .. address:gsub("%.", "%%.") .. "/24", out)
    ok(lbox { "rm", "-f", table.unpack(ids) })
    assert.are.same({}, network.inspect("spec-many").leases)
    -- the lowest address is free again
    assert.matches("inet 10%.251%.4%.2/", ok(lbox { "run", "--network", "spec-many", "ip", "-o", "-4", "addr" }))
    ok(lbox { "network", "rm", "spec-many" })
  end)

  it("sweeps what a SIGKILLed lbox left: lease, veth, port rules", function()
    local existing = {}
    for _, name in ipairs(helper.links()) do existing[name] = true end
    local proc = helper.start { helper.lbox, "run", "-p", "18083:80", "sleep", "600" }
    local veth
    assert.is_true(helper.eventually(function()
      for _, name in ipairs(helper.links()) do
        if name:match("^lbx%x+$") and not existing[name] then veth = name end
      end
      return veth ~= nil
    end, 10), "no veth appeared")
    assert.is_true(helper.eventually(function()
      return table.concat(helper.nft_rules(), "\n"):find("dport 18083") ~= nil
    end, 5))
    core.kill(proc.pid, core.SIGKILL)
    assert.are.equal(137, helper.finish(proc).code)
    -- the next start sweeps, and may take the port again
    ok(lbox { "run", "-p", "18083:80", "true" })
    assert.is_nil(helper.read_file("/sys/class/net/" .. veth .. "/ifindex"))
    assert.are.same({}, network.inspect("bridge").leases)
  end)
end)

--- Spec helpers: run lbox as a subprocess (argv passed as is, any size),
-- drive it through a real pseudo-terminal, and check that nothing leaked.
local assert = require "luassert"
local cgroups = require "lbox.cgroups"
local cjson = require "cjson"
local core = require "lbox.core"
local fs = require "lbox.fs"
local lfs = require "lfs"
local network = require "lbox.network"

local M = {}

M.root = lfs.currentdir()
M.lbox = M.root .. "/lbox"
M.fixtures = M.root .. "/spec/fixtures"
M.store = os.getenv("LBOX_STORE") or "/var/lib/lbox"
--- The state root (--root) the specs give lbox oci: beside the store.
M.oci_root = M.store .. "-oci"
--- lbox run arguments that make the fixtures visible at /fixtures, read-only.
M.WITH_FIXTURES = { "-v", M.fixtures .. ":/fixtures:ro" }
M.PROBE = "/fixtures/probe.sh"
--- The environment lbox runs with in the specs, plus `extra` ("NAME=value"
-- strings); the store and cgroup parent the suite uses are always passed on.
function M.env(...)
  local env = { ... }
  for _, name in ipairs { "LBOX_STORE", "LBOX_CGROUP_PARENT" } do
    if os.getenv(name) then env[#env + 1] = name .. "=" .. os.getenv(name) end
  end
  return env
end
M.ENV = M.env("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C")

local function now()
  local f = io.open("/proc/uptime")
  local t = tonumber(f:read("n"))
  f:close()
  return t
end

M.read_file = fs.read_file
M.write_file = fs.write_file

--- Start argv[1] with arguments argv (no shell). opts.stdin: string to feed;
-- opts.keep_stdin: leave its input open, as proc.in_fd, for the caller to
-- write to and close. @return process { pid, out_fd, err_fd [, in_fd] }
function M.start(argv, opts)
  opts = opts or {}
  local in_r, in_w = assert(core.pipe())
  local out_r, out_w = assert(core.pipe())
  local err_r, err_w = assert(core.pipe())
  local pid = assert(core.clone(0))
  if pid == 0 then
    core.dup2(in_r, 0)
    core.dup2(out_w, 1)
    core.dup2(err_w, 2)
    core.execve(argv[1], argv, opts.env or M.ENV)
    core._exit(127)
  end
  core.close(in_r); core.close(out_w); core.close(err_w)
  if opts.stdin then core.write(in_w, opts.stdin) end
  if opts.keep_stdin then return { pid = pid, out_fd = out_r, err_fd = err_r, in_fd = in_w } end
  core.close(in_w)
  return { pid = pid, out_fd = out_r, err_fd = err_r }
end

--- Collect a started process's output and status; kills it after
-- `timeout` seconds (default 60) and fails the test.
-- @return { code, out, err } where code is the exit code or 128 + signal
function M.finish(proc, timeout)
  local deadline = now() + (timeout or 60)
  local out, err, open = {}, {}, { proc.out_fd, proc.err_fd }
  while #open > 0 do
    local ready = core.poll(open, 200)
    for i = #open, 1, -1 do
      local fd = open[i]
      if ready[fd] then
        local data = core.read(fd, 65536)
        if not data or data == "" then
          core.close(fd)
          table.remove(open, i)
        else
          table.insert(fd == proc.out_fd and out or err, data)
        end
      end
    end
    if now() > deadline then
      core.kill(proc.pid, core.SIGKILL)
      core.waitpid(proc.pid)
      for _, fd in ipairs(open) do core.close(fd) end
      error("process " .. proc.pid .. " timed out; stderr: " .. table.concat(err), 2)
    end
  end
  local _, how, code = core.waitpid(proc.pid)
  return { code = how == "exited" and code or 128 + code, out = table.concat(out), err = table.concat(err) }
end

--- Read from `fd` until the text read matches `pattern`; fails the test at
-- end of file or after `timeout` seconds (default 10).
function M.read_until(fd, pattern, timeout)
  local deadline, text = now() + (timeout or 10), ""
  while not text:find(pattern) do
    local ready = core.poll({ fd }, 100)
    if ready[fd] then
      local data = core.read(fd, 4096)
      if not data or data == "" then error("end of output before " .. pattern .. ": " .. text, 2) end
      text = text .. data
    end
    if now() > deadline then error("timed out waiting for " .. pattern .. ": " .. text, 2) end
  end
  return text
end

--- Run argv to its end. @see start, finish
function M.exec(argv, opts)
  return M.finish(M.start(argv, opts), opts and opts.timeout)
end

--- Run lbox with the given arguments.
function M.lbox_run(args, opts)
  return M.exec({ M.lbox, table.unpack(args) }, opts)
end

--- Assert that lbox refuses `args` as bad input: exit 125 and one line
-- of error matching `pattern`.
function M.refused(args, pattern)
  local r = M.lbox_run(args)
  assert.are.equal(125, r.code, table.concat(args, " ") .. ": " .. r.err)
  assert.matches("^lbox: error: [^\n]+\n$", r.err)
  assert.matches(pattern, r.err)
end

--- Run a shell command line (for setups that need a shell).
function M.sh(script, opts)
  return M.exec({ "/bin/sh", "-c", script }, opts)
end

--- Start argv on a new pseudo-terminal as its controlling terminal.
-- @return terminal { pid, master, output = "" }
function M.start_pty(argv, rows, cols)
  local master, slave = assert(core.openpty())
  core.set_winsize(master, rows or 24, cols or 80)
  local pid = assert(core.clone(0))
  if pid == 0 then
    core.setsid()
    core.set_controlling_tty(slave)
    for fd = 0, 2 do core.dup2(slave, fd) end
    core.execve(argv[1], argv, M.env("PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TERM=xterm"))
    core._exit(127)
  end
  core.close(slave)
  return { pid = pid, master = master, output = "" }
end

--- Read the terminal until its output matches `pattern` (a Lua pattern).
-- @return true | false after `timeout` seconds or at end of output
function M.expect(term, pattern, timeout)
  local deadline = now() + (timeout or 10)
  while not term.output:find(pattern) do
    if now() > deadline then return false end
    local ready = core.poll({ term.master }, 100)
    if ready[term.master] then
      local data = core.read(term.master, 4096)
      if not data or data == "" then return term.output:find(pattern) ~= nil end
      term.output = term.output .. data
    end
  end
  return true
end

--- Wait for a pty process (killing it after `timeout` seconds) and close
-- the terminal. @return exit code (128 + signal when killed)
function M.finish_pty(term, timeout)
  local deadline = now() + (timeout or 10)
  local pid, how, code
  repeat
    M.expect(term, "\0never\0", 0.05) -- keep reading what it prints
    pid, how, code = core.waitpid(term.pid, "nohang")
  until pid ~= 0 or now() > deadline
  if pid == 0 then
    core.kill(term.pid, core.SIGKILL)
    how, code = select(2, core.waitpid(term.pid))
  end
  core.close(term.master)
  return how == "exited" and code or 128 + code
end

--- A copy of the built lbox (binary, Lua tree, bytecode, core.so) in a new
-- directory under /tmp that any user can reach, for specs that run it as
-- an unprivileged user: the checkout may sit where they cannot (/root is
-- 0700). @return the directory, and a function that removes it
function M.world_readable_copy()
  local dir = assert(io.popen("mktemp -d /tmp/lbox-spec-copy.XXXXXX")):read("l")
  local r = M.sh(string.format("chmod 755 %s && cp -a lbox lua scripts %s/ && mkdir -p %s/build "
    .. "&& cp -a build/lua build/lbox %s/build/ && chmod -R a+rX %s", dir, dir, dir, dir, dir))
  assert(r.code == 0, "copying lbox to " .. dir .. ": " .. r.err)
  return dir, function() fs.remove_tree(dir) end
end

-- lbox's per-container cgroups, in every hierarchy.
function M.container_cgroups()
  local found = {}
  for _, base in ipairs { "/sys/fs/cgroup", "/sys/fs/cgroup/*" } do
    local p = io.popen("ls -d " .. base .. "/" .. cgroups.parent .. "/* 2>/dev/null")
    for dir in p:lines() do
      local id = dir:match("/(%x+)$")
      if id and #id == 64 then found[#found + 1] = dir end
    end
    p:close()
  end
  table.sort(found)
  return found
end

-- Processes in another pid namespace than ours: containers.
local function foreign_processes()
  local mine = lfs.symlinkattributes("/proc/self/ns/pid", "target")
  local found = {}
  for name in lfs.dir("/proc") do
    if name:match("^%d+$") then
      local ns = lfs.symlinkattributes("/proc/" .. name .. "/ns/pid", "target")
      if ns and ns ~= mine then found[#found + 1] = tonumber(name) end
    end
  end
  table.sort(found)
  return found
end

local function children()
  local list = {}
  for task in lfs.dir("/proc/self/task") do
    local text = task:match("^%d+$") and M.read_file("/proc/self/task/" .. task .. "/children") or ""
    for pid in text:gmatch("%d+") do list[#list + 1] = tonumber(pid) end
  end
  return list
end

local function listing(dir)
  local names = {}
  if lfs.attributes(dir, "mode") == "directory" then
    for name in lfs.dir(dir) do
      if name ~= "." and name ~= ".." then names[#names + 1] = name end
    end
  end
  table.sort(names)
  return names
end

-- The default network's bridge and its route may appear on first use, as
-- the built-in image does; nothing else of the host's network may change.
local DEFAULT_BRIDGE = network.default_bridge()

local function without_default_bridge(list)
  local out = {}
  for _, item in ipairs(list) do
    if item ~= DEFAULT_BRIDGE and not item:match("^" .. DEFAULT_BRIDGE .. "%s") then out[#out + 1] = item end
  end
  return out
end

local function lines_of(text)
  local lines = {}
  for line in (text or ""):gmatch("[^\n]+") do lines[#lines + 1] = line end
  return lines
end

local function contains_name(list, name)
  for _, item in ipairs(list) do if item == name then return true end end
  return false
end

--- The host's network interfaces, by name.
function M.links()
  return listing("/sys/class/net")
end

--- The host's IPv4 routes (/proc/net/route lines).
function M.routes()
  return lines_of(M.read_file("/proc/net/route"))
end

--- The rules of lbox's nftables table (this store's) that hold a container's or a
-- network's resources: published ports (elements of its ports_* maps, written
-- as the DNAT rule each stands for) and the bridges named.
function M.nft_rules()
  local text = core.nft("list table ip " .. network.table_name()) or ""
  local rules = {}
  local map, elements
  for _, line in ipairs(lines_of(text)) do
    map = line:match("^%s*map (ports_[%w_]+) {") or map
    elements = elements or (map and line:match("elements = {(.*)$"))
    if elements and not line:find("elements = {", 1, true) then elements = elements .. line end
    if elements and elements:find("}", 1, true) then
      local protocol, keyed = map:match("^ports_(%a+)(.*)$")
      for element in elements:gsub("}.*", ""):gmatch("[^,]+") do
        local key, address, port = element:match("^%s*(.-)%s*:%s*([%d.]+) %. (%d+)%s*$")
        local host_ip, host_port = key:match("^([%d.]+) %. (%d+)$")
        rules[#rules + 1] = string.format("%s%s dport %s dnat to %s:%s", keyed == "_ip" and ("ip daddr " .. host_ip .. " ") or "",
          protocol, host_port or key, address, port)
      end
      elements = nil
    end
    for bridge in line:gmatch('"(lbr%-%x+)"') do rules[#rules + 1] = "bridge " .. bridge end
  end
  table.sort(rules)
  -- one entry per bridge
  local unique = {}
  for _, rule in ipairs(rules) do if unique[#unique] ~= rule then unique[#unique + 1] = rule end end
  return unique
end

-- Every address lease of lbox's networks, as "network address id".
local function leases()
  local found = {}
  for _, name in ipairs(listing(M.store .. "/networks")) do
    local text = name:match("%.json$") and M.read_file(M.store .. "/networks/" .. name)
    local ok, net = pcall(cjson.decode, text or "")
    for address, lease in pairs(ok and type(net) == "table" and net.leases or {}) do
      found[#found + 1] = name .. " " .. address .. " " .. tostring(lease.id)
    end
  end
  table.sort(found)
  return found
end

--- The lines only one of two texts has, marked "-" (only in `old`) or "+".
function M.changed_lines(old, new)
  local count = {}
  for line in old:gmatch("[^\n]+") do count[line] = (count[line] or 0) + 1 end
  for line in new:gmatch("[^\n]+") do count[line] = (count[line] or 0) - 1 end
  local changed = {}
  for line, n in pairs(count) do
    if n ~= 0 then changed[#changed + 1] = (n > 0 and "- " or "+ ") .. line end
  end
  table.sort(changed)
  return changed
end

-- The user namespace ranges lbox's containers hold (lbox.userns records
-- each in its container's directory), as "uid START+COUNT gid START+COUNT".
local function userns_ranges()
  local found = {}
  for _, id in ipairs(listing(M.store .. "/containers")) do
    local ok, maps = pcall(cjson.decode, M.read_file(M.store .. "/containers/" .. id .. "/userns.json") or "")
    if ok and type(maps) == "table" then
      local words = {}
      for _, kind in ipairs { "uid", "gid" } do
        for _, line in ipairs(maps[kind] or {}) do
          words[#words + 1] = string.format("%s %d+%d", kind, math.tointeger(line[2]), math.tointeger(line[3]))
        end
      end
      found[#found + 1] = table.concat(words, " ")
    end
  end
  table.sort(found)
  return found
end

--- What could leak: mounts, container cgroups, container processes,
-- state in lbox's store (container directories, staging, images, layers,
-- downloads, networks and their leases, user namespace ranges), and the
-- host's interfaces, routes and
-- lbox's nftables rules.
function M.snapshot()
  return {
    links = without_default_bridge(M.links()),
    routes = without_default_bridge(M.routes()),
    nft = M.nft_rules(),
    networks = listing(M.store .. "/networks"),
    leases = leases(),
    mounts = M.read_file("/proc/self/mountinfo"),
    cgroups = M.container_cgroups(),
    foreign = foreign_processes(),
    containers = listing(M.store .. "/containers"),
    -- lbox.index: a name or an unkept container outliving its container
    index = { names = listing(M.store .. "/index/names"), unkept = listing(M.store .. "/index/unkept") },
    staging = listing(M.store .. "/tmp"),
    images = listing(M.store .. "/images"),
    layers = listing(M.store .. "/layers/sha256"),
    downloads = listing(M.store .. "/downloads"),
    oci = listing(M.oci_root),
    ranges = userns_ranges(),
  }
end

--- Assert that nothing leaked since `before` (a snapshot). Containers end
-- asynchronously when their lbox is killed: give them a moment.
function M.assert_no_leaks(before)
  local after
  for _ = 1, 60 do
    after = M.snapshot()
    -- a container's veth goes with its network namespace, in the background
    if #after.foreign <= #before.foreign and #after.cgroups <= #before.cgroups and #children() == 0
      and #after.links <= #before.links and after.mounts == before.mounts then
      break
    end
    M.sleep(0.05)
  end
  -- report this test's leaks (from `after`), but let later tests start clean
  if #after.containers > 0 then M.lbox_run { "rm", "-f", table.unpack(after.containers) } end
  for _, id in ipairs(after.oci) do
    if not contains_name(before.oci, id) then M.exec { M.root .. "/lbox-oci", "--root", M.oci_root, "delete", "--force", id } end
  end
  for _, pid in ipairs(children()) do
    core.kill(pid, core.SIGKILL)
    core.waitpid(pid)
  end
  local known = {}
  for _, name in ipairs(before.networks) do known[name] = true end
  for _, name in ipairs(after.networks) do
    local network_name = name:match("^(.+)%.json$")
    if network_name and not known[name] and network_name ~= "bridge" then M.lbox_run { "network", "rm", network_name } end
  end
  assert.are.same(before.cgroups, after.cgroups, "container cgroups left behind")
  assert.are.same(before.foreign, after.foreign, "container processes left behind")
  assert.are.same({}, children(), "child processes left behind")
  assert.are.same({}, M.changed_lines(before.mounts, after.mounts), "the host mount table changed")
  assert.are.same({}, after.containers, "container directories left in the store")
  assert.are.same(before.oci, after.oci, "OCI containers' state left under " .. M.oci_root)
  assert.are.same(before.index, after.index, "entries left in the store's indexes")
  assert.are.same(before.ranges, after.ranges, "user namespace ranges left taken")
  assert.are.same({}, after.staging, "staging directories left in the store")
  assert.are.same(before.links, after.links, "network interfaces left behind")
  assert.are.same(before.routes, after.routes, "routes left behind")
  assert.are.same(before.nft, after.nft, "rules left in lbox's nftables table")
  assert.are.same(before.leases, after.leases, "address leases left in the store")
  local networks = {}
  for _, name in ipairs(after.networks) do
    if name ~= "bridge.json" and name ~= "lock" then networks[#networks + 1] = name end
  end
  local expected_networks = {}
  for _, name in ipairs(before.networks) do
    if name ~= "bridge.json" and name ~= "lock" then expected_networks[#expected_networks + 1] = name end
  end
  assert.are.same(expected_networks, networks, "networks added or removed")
  -- the built-in image may appear on first use; nothing else may change
  local images = {}
  for _, name in ipairs(after.images) do if name ~= "busybox" then images[#images + 1] = name end end
  local expected = {}
  for _, name in ipairs(before.images) do if name ~= "busybox" then expected[#expected + 1] = name end end
  assert.are.same(expected, images, "images added or removed")
  -- and so may its layer
  local builtin = cjson.decode(M.read_file(M.store .. "/images/busybox/manifest.json") or "{}").layers or {}
  local layers = {}
  for _, hex in ipairs(after.layers) do
    if "sha256:" .. hex ~= builtin[1] then layers[#layers + 1] = hex end
  end
  local expected_layers = {}
  for _, hex in ipairs(before.layers) do
    if "sha256:" .. hex ~= builtin[1] then expected_layers[#expected_layers + 1] = hex end
  end
  assert.are.same(expected_layers, layers, "layers added or removed")
  assert.are.same(before.downloads, after.downloads, "downloads left in the store")
  assert.truthy(lfs.attributes("/proc/self/exe"), "the host /proc is broken")
end

function M.sleep(seconds)
  core.poll({}, math.floor(seconds * 1000))
end

--- Wait until `check()` holds (at most `seconds`). @return whether it did
function M.eventually(check, seconds)
  for _ = 1, (seconds or 10) * 20 do
    if check() then return true end
    M.sleep(0.05)
  end
  return check() and true or false
end

return M

--- User namespaces (--userns=auto, --uidmap/--gidmap): the container's
-- root is an unprivileged range of the host's ids. With auto, a range of
-- RANGE ids of the user lbox's (USER) entries in /etc/subuid and
-- /etc/subgid, the entries made on first use as podman makes its
-- "containers" ones; each container takes a range no other live container
-- has, recorded in its state (so the range is free again when its
-- directory goes: rm, or the sweep of a dead one). lbox, root, writes the
-- maps of the cloned init itself (no newuidmap), and prepares its root
-- before the clone: the image's files appear owned by the container's
-- root through an idmapped mount, else through a copy chowned into the
-- range (kernels that cannot idmap the filesystem or use a detached
-- idmapped layer, such as 6.1).
local cjson = require "cjson"
local core = require "lbox.core"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local images = require "lbox.images"
local lfs = require "lfs"
local state = require "lbox.state"
local store = require "lbox.store"

local M = {}

local try = errors.try

M.USER = "lbox"
M.SUBUID, M.SUBGID = "/etc/subuid", "/etc/subgid"
-- each container's: the ids a container of docker or podman uses
M.RANGE = 65536
-- lbox's entry when it makes one: 8192 containers' worth, from 2^31 up
-- (above the 100000.. ranges useradd gives users), or above the entries
-- there are
M.POOL_START, M.POOL_SIZE = 2147483648, 65536 * 8192
-- Whether to try an idmapped mount of the image first; false: always the
-- copy (the specs try both ways on any kernel).
M.IDMAP = true
-- the highest id a map may reach (4294967295 is "no id")
local MAX_ID = 4294967294
-- The namespaces a container in a user namespace must have of its own:
-- the host's (--network host...), owned by the host's user namespace,
-- would be out of its root's reach and its capabilities, as docker's rules
M.OWN_NAMESPACES = { "mount", "pid", "net", "ipc", "uts" }

--- "CONTAINER:HOST:SIZE" (podman's --uidmap) as { container, host, size }
-- | nil, reason.
function M.parse_map(text)
  local c, h, n = tostring(text):match("^(%d+):(%d+):(%d+)$")
  c, h, n = math.tointeger(tonumber(c)), math.tointeger(tonumber(h)), math.tointeger(tonumber(n))
  if not n or n < 1 or c + n - 1 > MAX_ID or h + n - 1 > MAX_ID then
    return nil, string.format("%q: use CONTAINER:HOST:SIZE (ids, SIZE at least 1)", tostring(text))
  end
  return { c, h, n }
end

-- A list of { container, host, size } that is a valid map: no two lines
-- overlap on either side (the kernel refuses those), at most 340 lines.
local function check_map(list)
  if #list > 340 then return nil, "at most 340 lines" end
  for i, a in ipairs(list) do
    for j = i + 1, #list do
      local b = list[j]
      for side = 1, 2 do
        if a[side] < b[side] + b[3] and b[side] < a[side] + a[3] then
          return nil, string.format("%d:%d:%d overlaps %d:%d:%d", a[1], a[2], a[3], b[1], b[2], b[3])
        end
      end
    end
  end
  return list
end

--- The host id that container id `id` is under `map` | nil (unmapped).
function M.host_id(map, id)
  for _, line in ipairs(map) do
    if id >= line[1] and id < line[1] + line[3] then return line[2] + id - line[1] end
  end
  return nil
end

--- Check the spec's userns, uidmap and gidmap fields into `out.userns`:
-- nil (the host's, the default), or { mode = "auto" }, or { mode = "map",
-- uid = map, gid = map }; and that the rest of `out` (its namespaces,
-- privileged) allows one. `name(field)` is how the user knows a field.
function M.check(spec, out, bad, name)
  local mode = spec.userns
  if mode ~= nil and mode ~= "host" and mode ~= "auto" then
    bad("userns", "%q: use host or auto", tostring(mode))
  end
  local maps = {}
  for _, field in ipairs { "uidmap", "gidmap" } do
    local list = spec[field]
    if list ~= nil then
      if type(list) ~= "table" then bad(field, "a list of CONTAINER:HOST:SIZE expected") end
      maps[field] = {}
      for i, item in ipairs(list) do
        local line, why = M.parse_map(item)
        if not line then bad(field, "%s", why) end
        maps[field][i] = line
      end
      local ok, why = check_map(maps[field])
      if not ok then bad(field, "%s", why) end
    end
  end
  if maps.uidmap or maps.gidmap then
    if mode ~= nil then bad("userns", "give %s or %s, not both", name("userns"), name("uidmap")) end
    -- podman's: one map alone serves for both
    out.userns = { mode = "map", uid = maps.uidmap or maps.gidmap, gid = maps.gidmap or maps.uidmap }
    for _, kind in ipairs { "uid", "gid" } do
      if not M.host_id(out.userns[kind], 0) then
        bad(kind .. "map", "maps no %s 0: the container's root must be one of the host's ids", kind)
      end
    end
  elseif mode == "auto" then
    out.userns = { mode = "auto" }
  end
  if not out.userns then return end
  local field = out.userns.mode == "auto" and "userns" or "uidmap"
  if out.rootfs then
    -- an idmapped directory of the host's would take the container root's
    -- writes as the host root's (a setuid file, say), and a copy would not be it
    bad(field, "conflicts with %s: a user namespace runs on an image (see lbox image import)", name("rootfs"))
  end
  if out.privileged then
    bad(field, "conflicts with %s: the host's root cannot be had in a user namespace", name("privileged"))
  end
  for kind in pairs(out.join) do
    bad(field, "conflicts with sharing another container's %s namespace (%s): it is not in this user namespace",
      kind, name("join"))
  end
  for _, kind in ipairs(M.OWN_NAMESPACES) do
    if not out.namespaces[kind] then
      bad(field, "conflicts with %s: a user namespace needs a %s namespace of its own",
        kind == "net" and "--network host" or "the host's " .. kind .. " namespace", kind)
    end
  end
  -- before pivot_root the container's root, one of the range's ids, mounts
  -- its layer by the store's path: every directory on it must let others by
  local closed = M.closed_directory(store.root())
  if closed then
    bad(field, "needs lbox's store where every user may pass: %s is closed to others "
      .. "(chmod o+x %s, or another LBOX_STORE)", closed, closed)
  end
end

--- The first directory on `path` (an absolute path) that others may not
-- pass through (no o+x) | nil.
function M.closed_directory(path)
  local prefix = ""
  for part in path:gmatch("[^/]+") do
    prefix = prefix .. "/" .. part
    local permissions = lfs.attributes(prefix, "permissions")
    if not permissions then return nil end -- made later, by lbox: open to others
    if permissions:sub(9, 9) ~= "x" then return prefix end
  end
  return nil
end

--- The { start, count } ranges `user` has in subordinate id file `text`.
function M.entries(text, user)
  local list = {}
  for line in (text or ""):gmatch("[^\n]+") do
    local who, start, count = line:match("^%s*([^:#%s]+):(%d+):(%d+)%s*$")
    if who == user then list[#list + 1] = { math.tointeger(tonumber(start)), math.tointeger(tonumber(count)) } end
  end
  return list
end

--- USER's entries in subordinate id file `path`, with one added when it
-- has none: POOL_SIZE ids above every other entry. Called under the store
-- lock. @return list of { start, count }
function M.ensure_entries(path, user)
  local text = fs.read_file(path) or ""
  local found = M.entries(text, user)
  if #found > 0 then return found end
  local start = M.POOL_START
  for line in text:gmatch("[^\n]+") do
    local first, count = line:match("^%s*[^:#%s]+:(%d+):(%d+)")
    local after = first and math.tointeger(tonumber(first) + tonumber(count))
    if after and after > start and math.tointeger(tonumber(first)) < start + M.POOL_SIZE then
      start = (after + M.RANGE - 1) // M.RANGE * M.RANGE
    end
  end
  if start + M.POOL_SIZE - 1 > MAX_ID then
    errors.raise(string.format("%s has no room for lbox's ids: add a line %s:START:COUNT (COUNT at least %d)",
      path, user, M.RANGE))
  end
  local entry = string.format("%s:%d:%d\n", user, start, M.POOL_SIZE)
  local sep = (text == "" or text:sub(-1) == "\n") and "" or "\n"
  -- the whole file anew, then renamed over: never half of it
  fs.write_file(path .. ".lbox-tmp", text .. sep .. entry)
  -- readable by all, as shadow's tools make it, whatever lbox's umask
  local fd = try("cannot add lbox's ids to " .. path, core.open(path .. ".lbox-tmp", "r"))
  local ok, msg = core.fchmod(fd, tonumber("644", 8))
  core.close(fd)
  try("cannot add lbox's ids to " .. path, ok, msg)
  try("cannot add lbox's ids to " .. path, os.rename(path .. ".lbox-tmp", path))
  return { { start, M.POOL_SIZE } }
end

-- The slots of RANGE ids in `entries`, in order: { start } each.
local function slots(entries)
  local list = {}
  for _, e in ipairs(entries) do
    for start = e[1], e[1] + e[2] - M.RANGE, M.RANGE do list[#list + 1] = start end
  end
  return list
end

-- Where container `id`'s maps are recorded: a file of its directory of
-- its own (claim writes the state anew when the monitor restarts it).
local function record_path(id)
  return state.dir(id) .. "/userns.json"
end

-- cjson reads numbers as floats: ids are integers
local function integers(map)
  local out = {}
  for i, line in ipairs(type(map) == "table" and map or {}) do
    out[i] = { math.tointeger(line[1]), math.tointeger(line[2]), math.tointeger(line[3]) }
  end
  return out
end

--- The maps recorded for container `id` | nil.
function M.recorded(id)
  local maps = fs.read_json(record_path(id))
  if not maps then return nil end
  return { auto = maps.auto == true, uid = integers(maps.uid), gid = integers(maps.gid) }
end

-- Does [start, start + size) meet a host range of `maps`?
local function overlaps(maps, start, size)
  for _, line in ipairs(maps) do
    if start < line[2] + line[3] and line[2] < start + size then return true end
  end
  return false
end

--- For container `id`, in its claimed directory: its maps, taken now for
-- auto (under the store lock: the first range of lbox's entries that no
-- other container's maps meet, or the one it had if the monitor restarts
-- it, since its layer is that range's), recorded in its directory, and in
-- its state for exec and inspect. @return { uid = map, gid = map }
function M.take(id, userns)
  local maps = { uid = userns.uid, gid = userns.gid }
  local lock <close> = store.lock() -- luacheck: no unused (held until return)
  local previous = M.recorded(id)
  if userns.mode == "auto" and previous and previous.auto then
    maps = previous
  elseif userns.mode == "auto" then
    local others = {}
    for other in fs.dir(state.base()) do
      local recorded = #other == 64 and other ~= id and M.recorded(other)
      if recorded then others[#others + 1] = recorded end
    end
    local uids = slots(M.ensure_entries(M.SUBUID, M.USER))
    local gids = slots(M.ensure_entries(M.SUBGID, M.USER))
    for i = 1, math.min(#uids, #gids) do
      local free = true
      for _, other in ipairs(others) do
        free = free and not overlaps(other.uid, uids[i], M.RANGE) and not overlaps(other.gid, gids[i], M.RANGE)
      end
      if free then
        maps = { auto = true, uid = { { 0, uids[i], M.RANGE } }, gid = { { 0, gids[i], M.RANGE } } }
        break
      end
    end
    if not maps.uid then
      errors.raise(string.format("no free range of %d ids left for --userns=auto: give user %s more in %s and %s",
        M.RANGE, M.USER, M.SUBUID, M.SUBGID))
    end
  end
  fs.write_file(record_path(id), cjson.encode(maps))
  state.update(id, { userns = maps })
  return maps
end

local function map_text(map)
  local lines = {}
  for i, line in ipairs(map) do lines[i] = string.format("%d %d %d\n", line[1], line[2], line[3]) end
  return table.concat(lines)
end

--- Write the uid and gid maps of process `pid`'s user namespace (made
-- by its clone, and waiting): one write each, as the kernel wants.
-- @return true | nil, message
function M.write_maps(pid, maps)
  for _, kind in ipairs { "uid", "gid" } do
    local path = "/proc/" .. pid .. "/" .. kind .. "_map"
    local fd, msg = core.open(path, "w")
    if not fd then return nil, msg end
    local ok, why = core.write(fd, map_text(maps[kind]))
    core.close(fd)
    if not ok then return nil, string.format("%s: %s", path, why) end
  end
  return true
end

--- A user namespace with `maps`, held by a descriptor: a throwaway
-- child's, for an idmapped mount made before the container's own exists.
-- @return fd | nil, message
function M.namespace_fd(maps)
  local read_end, write_end = try("cannot create a pipe", core.pipe())
  local pid, msg = core.clone(core.CLONE_NEWUSER)
  if pid == 0 then
    core.close(write_end)
    core.read(read_end, 1) -- until lbox has its namespace
    core._exit(0)
  end
  core.close(read_end)
  local fd
  if pid then
    local ok
    ok, msg = M.write_maps(pid, maps)
    if ok then fd, msg = core.open("/proc/" .. pid .. "/ns/user", "r") end
  end
  core.close(write_end)
  if pid then core.waitpid(pid) end
  if not fd then return nil, "cannot create a user namespace: " .. tostring(msg) end
  return fd
end

--- The container id that host id `id` is under `map` | nil (unmapped).
function M.container_id(map, id)
  for _, line in ipairs(map) do
    if id >= line[2] and id < line[2] + line[3] then return line[1] + id - line[2] end
  end
  return nil
end

-- Every id `column` ("%U", "%G") of find gives under `dir`, on its filesystem.
local function ids_under(dir, column)
  local ids = {}
  local p = io.popen(string.format("find %s -xdev -printf '%s\\n' | sort -un", fs.quote(dir .. "/."), column))
  for line in p:lines() do ids[#ids + 1] = math.tointeger(tonumber(line)) end
  p:close()
  return ids
end

-- A tar owner map file (GNU tar's --owner-map) sending each of `ids`
-- to what `convert(id)` gives; nil keeps it.
local function tar_map(path, ids, convert)
  local lines = {}
  for _, id in ipairs(ids) do
    local other = convert(id)
    if other then lines[#lines + 1] = string.format("+%d +%d\n", id, other) end
  end
  fs.write_file(path, table.concat(lines))
end

--- For reading the root `path` of a container with `maps` into a tarball
-- (commit, export): GNU tar options, and the map files in directory `dir`
-- they name, that give its files their owners as the container sees them
-- (its layer's are in the range; an ended container's image files not).
-- @return options string, function that removes the files
function M.tar_owner_options(path, maps, dir)
  local uid_file, gid_file = dir .. "/tar-uid.map", dir .. "/tar-gid.map"
  tar_map(uid_file, ids_under(path, "%U"), function(id) return M.container_id(maps.uid, id) end)
  tar_map(gid_file, ids_under(path, "%G"), function(id) return M.container_id(maps.gid, id) end)
  return string.format(" --owner-map=%s --group-map=%s", fs.quote(uid_file), fs.quote(gid_file)),
    function()
      os.remove(uid_file)
      os.remove(gid_file)
    end
end

--- A copy of the tree `lower` at `copy`, each owner moved into the
-- container's range (`maps`), as GNU tar copies: modes, links, devices,
-- extended attributes.
function M.chowned_copy(lower, copy, maps)
  local dir = copy:match("^(.*)/[^/]*$")
  tar_map(dir .. "/uid.map", ids_under(lower, "%U"), function(id) return M.host_id(maps.uid, id) end)
  tar_map(dir .. "/gid.map", ids_under(lower, "%G"), function(id) return M.host_id(maps.gid, id) end)
  try("cannot create the container's copy of its image", fs.mkdir_p(copy))
  fs.run("cannot copy the image into the container's range", "tar -C %s -cf - --numeric-owner --owner-map=%s "
    .. "--group-map=%s " .. images.TAR_KEEP .. " . | tar -C %s -xf - --numeric-owner --same-owner -p "
    .. images.TAR_KEEP, lower, dir .. "/uid.map", dir .. "/gid.map", copy)
  os.remove(dir .. "/uid.map")
  os.remove(dir .. "/gid.map")
end

-- The overlay of the root in container directory `dir`, detached, on `lower`.
local function overlay(dir, lower, nodev)
  return core.fsmount("overlay", { lowerdir = lower, upperdir = dir .. "/upper", workdir = dir .. "/work" },
    nodev and core.MOUNT_ATTR_NODEV or 0)
end

local function chown(path, uid, gid)
  local fd, msg = core.open(path, "r")
  if not fd then return nil, msg end
  local ok, why = core.fchown(fd, uid, gid)
  core.close(fd)
  return ok, why
end

--- In lbox, before the clone: the container's root (`root`, of
-- lbox.rootfs.prepare, in directory `dir`, on the image root `lower` |
-- nil) as a detached mount the init attaches (root.mount_fd), its files
-- owned by the container's root, and the files lbox gives it (its layer's
-- top, /etc/hosts...) given to that root. Pushes on `undo` the closing of
-- what it holds. @return how the image's owners were moved:
-- "idmapped" | "copied"
function M.prepare_root(dir, root, lower, maps, nodev, undo)
  if not root.overlay then error("a user namespace needs an image (lbox.userns.check)", 2) end
  local uid, gid = M.host_id(maps.uid, 0), M.host_id(maps.gid, 0)
  if not uid or not gid then errors.raise("the user namespace's maps must map the container's root (id 0)") end
  for _, path in pairs(root.files) do try("cannot give " .. path .. " to the container", chown(path, uid, gid)) end
  -- needed only to make the idmapped mount
  local userns <close> = setmetatable({ fd = try("cannot map the image's owners", M.namespace_fd(maps)) },
    { __close = function(held) core.close(held.fd) end })
  undo:push("close the container's root", function()
    if root.mount_fd then core.close(root.mount_fd) end
    root.mount_fd = nil
  end)
  -- the top of its layer is the root directory the container sees
  try("cannot give the container its layer", chown(dir .. "/upper", uid, gid))
  if M.IDMAP then
    local image = try("cannot open the image", core.open_tree(lower))
    local tree = core.idmap_mount(image, userns.fd) and overlay(dir, "/proc/self/fd/" .. image, nodev)
    core.close(image)
    if tree then
      root.mount_fd = tree
      return "idmapped"
    end
  end
  -- 6.1 can idmap ext4 but not use it under an overlay made apart, nor
  -- idmap a tmpfs: the image's files copied into the range
  local copy = dir .. "/lower"
  M.chowned_copy(lower, copy, maps)
  root.mount_fd = try("cannot mount the container's root", overlay(dir, copy, nodev))
  return "copied"
end

--- In lbox, after the clone: let go of the root the init has now.
function M.release_root(root)
  if root.mount_fd then core.close(root.mount_fd) end
  root.mount_fd = nil
end

--- The container's terminal (a pty's slave, lbox's) to its root and its
-- tty group, as the host's root and tty own it without one: the init
-- makes it its console.
function M.give_terminal(fd, maps, tty_gid)
  local uid, gid = M.host_id(maps.uid, 0), M.host_id(maps.gid, tty_gid) or M.host_id(maps.gid, 0)
  try("cannot give the terminal to the container", core.fchown(fd, uid, gid))
end

return M

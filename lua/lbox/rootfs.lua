--- A container's filesystem. `prepare` and `remove` run in lbox, around the
-- container's life; the other functions run in the container's init, in its
-- own mount namespace, in the order container.init_steps gives.
local core = require "lbox.core"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local images = require "lbox.images"
local lfs = require "lfs"
local state = require "lbox.state"
local workload = require "lbox.workload"

local M = {}

local try = errors.try
local NOSUID, NODEV, NOEXEC = core.MS_NOSUID, core.MS_NODEV, core.MS_NOEXEC
local BIND, REC, RDONLY, REMOUNT = core.MS_BIND, core.MS_REC, core.MS_RDONLY, core.MS_REMOUNT

-- Device nodes of every container's /dev: name, major, minor.
local DEVICES = {
  { "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 }, { "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
}
local DEV_LINKS = {
  fd = "/proc/self/fd", stdin = "/proc/self/fd/0", stdout = "/proc/self/fd/1", stderr = "/proc/self/fd/2",
  ptmx = "pts/ptmx", core = "/proc/kcore",
}
-- What docker hides from /proc and /sys, and what it makes read-only.
M.MASKED_PATHS = {
  "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
  "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
}
M.READONLY_PATHS = { "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger" }

function M.container_dir(id)
  return images.store() .. "/containers/" .. id
end

local STALE_UNLOCKED_SECONDS = 60

-- Remove the directories of containers whose lbox died: their lock is free.
-- A directory without a lock file yet is being made, unless it is old.
local function sweep()
  local base = images.store() .. "/containers"
  for id in fs.dir(base) do
    local dir = base .. "/" .. id
    local fd = core.open(dir .. "/lock", "rw")
    if fd then
      -- a kept container stays until lbox rm
      local kept = (state.read(id) or {}).keep
      if not kept and core.flock(fd, "exclusive", "nowait") then fs.remove_tree(dir) end
      core.close(fd)
    elseif os.time() - (lfs.attributes(dir, "modification") or os.time()) > STALE_UNLOCKED_SECONDS then
      fs.remove_tree(dir)
    end
  end
end

-- The overlay of a container's layer in `dir` on the image root `lower`.
local function overlay_options(lower, dir)
  return string.format("lowerdir=%s,upperdir=%s/upper,workdir=%s/work", lower, dir, dir)
end

--- In lbox, before the clone: the container's directory, with its
-- copy-on-write layer when it runs an image, and its /etc files. The
-- directory's lock is held while the container lives (`lock_fd`).
-- @return the root description sent to the init:
--   { path, overlay = mount options | nil, files = { name = host path } }, lock_fd
function M.prepare(id, spec)
  local dir = M.container_dir(id)
  if dir:find("[,:]") then errors.raise("the store path may not contain ',' or ':': " .. images.store()) end
  -- one at a time through here: two containers never take one name, and a
  -- sweep never sees a directory between its creation and its lock
  try("cannot create the store", fs.mkdir_p(images.store() .. "/containers"))
  local store_lock <close> = setmetatable({ fd = try("cannot lock the store",
    core.open(images.store() .. "/containers.lock", "create")) }, { __close = function(l) core.close(l.fd) end })
  core.flock(store_lock.fd, "exclusive")
  sweep()
  if spec.name then
    for _, other in ipairs(state.list()) do
      if other.name == spec.name and other.id ~= id then -- itself when the monitor restarts it
        errors.raise(string.format("the name %q is taken by container %s: remove it or choose another",
          spec.name, other.id:sub(1, 12)))
      end
    end
  end
  local lower
  if spec.rootfs then
    if fs.kind(spec.rootfs) ~= "directory" then
      errors.raise(string.format("--rootfs %s: not a directory", spec.rootfs))
    end
  else
    local image = images.get(spec.image)
    if not image then
      errors.raise(string.format("no image %q: see lbox image ls, or import one with lbox image import", spec.image))
    end
    lower = image.rootfs
  end
  try("cannot create the container's directory", fs.mkdir_p(dir))
  local lock_fd = try("cannot lock the container's directory", core.open(dir .. "/lock", "create"))
  core.flock(lock_fd, "exclusive")
  state.write(id, {
    id = id, name = spec.name, image = spec.image or spec.rootfs, command = spec.command, status = "created",
    created = os.time(), keep = spec.keep, hostname = spec.hostname, env = spec.env, workdir = spec.workdir,
    user = spec.user, lower = lower,
  })
  local root = { files = {}, path = spec.rootfs }
  if lower then
    for _, sub in ipairs { "upper", "work", "merged" } do
      try("cannot create the container's layer", fs.mkdir_p(dir .. "/" .. sub))
    end
    root.path, root.overlay = dir .. "/merged", overlay_options(lower, dir)
  end
  for _, v in ipairs(spec.volumes) do
    -- like docker: a missing host directory is created
    if not fs.kind(v.host) then try("cannot create volume " .. v.host, fs.mkdir_p(v.host)) end
  end
  local resolv = workload.resolv_conf(fs.read_file("/etc/resolv.conf") or "", spec.dns or {})
  for name, content in pairs {
    hostname = spec.hostname .. "\n",
    hosts = workload.hosts(spec.hostname, spec.extra_hosts or {}),
    ["resolv.conf"] = resolv,
  } do
    fs.write_file(dir .. "/" .. name, content)
    root.files[name] = dir .. "/" .. name
  end
  return root, lock_fd
end

--- The root filesystem of container `ref` (an id prefix or a name), to
-- read from: a running container's as its init sees it; an ended one's
-- layer over its image, mounted read-only in a mount namespace of a helper
-- process, which ends (and the mount with it) when the result is closed
-- or lbox dies. Raises a user error when there is no such container.
-- @return to-be-closed { path }
function M.open(ref)
  local found = state.find(ref)
  local view = setmetatable({}, { __close = function(v)
    if v.hold then core.close(v.hold) end
    if v.pid then core.waitpid(v.pid) end
  end })
  if found.status == "running" and found.pid then
    view.path = "/proc/" .. found.pid .. "/root"
    return view
  end
  local dir = M.container_dir(found.id)
  if not found.lower then -- it ran on a directory of its own
    view.path = found.image
    return view
  end
  local ready_read, ready_write = try("cannot create a pipe", core.pipe())
  local hold_read, hold_write = try("cannot create a pipe", core.pipe())
  local pid, msg = core.clone(core.CLONE_NEWNS)
  if pid == 0 then
    core.close(ready_read)
    core.close(hold_write)
    core.set_pdeathsig(core.SIGKILL)
    local ok, why = core.mount(nil, "/", nil, core.MS_REC | core.MS_PRIVATE)
    if ok then
      ok, why = core.mount("overlay", dir .. "/merged", "overlay", core.MS_RDONLY | NODEV, overlay_options(found.lower, dir))
    end
    core.write(ready_write, ok and "ok" or why)
    core.close(ready_write)
    core.read(hold_read, 1) -- end of file: lbox is done, or gone
    core._exit(0)
  end
  core.close(ready_write)
  core.close(hold_read)
  if not pid then
    core.close(ready_read)
    core.close(hold_write)
    errors.raise("cannot create a process: " .. tostring(msg))
  end
  view.pid, view.hold = pid, hold_write
  local reply = core.read(ready_read, 4096) or ""
  core.close(ready_read)
  if reply ~= "ok" then
    getmetatable(view).__close(view)
    errors.raise(string.format("cannot mount the layer of container %s: %s", found.id:sub(1, 12),
      reply ~= "" and reply or "its helper process died"))
  end
  view.path = "/proc/" .. pid .. "/root" .. dir .. "/merged"
  return view
end

--- In lbox, after the container ended: remove its directory. The layer's
-- mounts lived in the container's mount namespace and went with it.
function M.remove(id)
  return fs.remove_tree(M.container_dir(id))
end

--- `path` inside `root`, following symlinks as the container would see
-- them: never outside `root`. @return host path
function M.secure_join(root, path)
  local resolved, pending, links = {}, {}, 0
  for part in path:gmatch("[^/]+") do pending[#pending + 1] = part end
  while #pending > 0 do
    local part = table.remove(pending, 1)
    if part == ".." then
      resolved[#resolved] = nil
    elseif part ~= "." then
      local candidate = root .. "/" .. table.concat(resolved, "/") .. (#resolved > 0 and "/" or "") .. part
      if lfs.symlinkattributes(candidate, "mode") == "link" then
        links = links + 1
        if links > 40 then errors.raise("too many levels of symbolic links in " .. path) end
        local target = lfs.symlinkattributes(candidate, "target")
        if target:sub(1, 1) == "/" then resolved = {} end
        local parts = {}
        for p in target:gmatch("[^/]+") do parts[#parts + 1] = p end
        table.move(pending, 1, #pending, #parts + 1, parts)
        pending = parts
      else
        resolved[#resolved + 1] = part
      end
    end
  end
  return root .. "/" .. table.concat(resolved, "/")
end

-- A directory (or with `file`, an empty file) at `path` inside `root`.
local function ensure(root, path, file)
  local target = M.secure_join(root, path)
  local kind = fs.kind(target)
  if file then
    try("cannot create " .. path, fs.mkdir_p(target:match("^(.*)/[^/]*$")))
    if not kind then fs.write_file(target, "") end
  elseif kind ~= "directory" then
    try("cannot create " .. path, fs.mkdir_p(target))
  end
  return target
end

local function mount(what, ...)
  return try("cannot mount " .. what, core.mount(...))
end

-- Device nodes in an image or a volume never open a host device: the
-- container's /dev is lbox's own, and until device rules exist, every other
-- mount of the container's files is nodev, submounts included.
local function no_devices(what, target)
  try("cannot mount " .. what .. " nodev", core.mount_setattr(target, core.MOUNT_ATTR_NODEV, 0, "recursive"))
end

--- Mount the root, nodev: the image's overlay, or a bind of the directory
-- (pivot_root needs a mount point).
function M.mount_root(root)
  if root.overlay then
    local ok, msg = core.mount("overlay", root.path, "overlay", NODEV, root.overlay)
    if not ok then
      errors.raise("cannot mount the container's root: " .. msg .. ": the store (" .. images.store()
        .. ", or $LBOX_STORE) must be on a filesystem overlayfs can write to, such as ext4, xfs or tmpfs")
    end
  else
    mount("the container's root", root.path, root.path, nil, BIND | REC)
    no_devices("the container's root", root.path)
  end
end

function M.mount_proc(root)
  mount("/proc", "proc", ensure(root.path, "/proc"), "proc", NOSUID | NOEXEC | NODEV)
end

--- /sys, read-only; its own sysfs when the container has its own network.
function M.mount_sys(root)
  local target = ensure(root.path, "/sys")
  if not core.mount("sysfs", target, "sysfs", RDONLY | NOSUID | NOEXEC | NODEV) then
    mount("/sys", "/sys", target, nil, BIND | REC)
    mount("/sys read-only", nil, target, nil, REMOUNT | BIND | RDONLY | NOSUID | NOEXEC | NODEV)
  end
end

--- The container's own cgroups at /sys/fs/cgroup, read-only, as docker
-- does: on v2 the cgroup namespace's view, on v1 a tmpfs with a bind of the
-- container's group in each hierarchy.
function M.mount_cgroups(root, unified, groups)
  local target = root.path .. "/sys/fs/cgroup"
  local flags = NOSUID | NOEXEC | NODEV
  if unified then
    mount("/sys/fs/cgroup", "cgroup2", target, "cgroup2", flags)
  else
    mount("/sys/fs/cgroup", "tmpfs", target, "tmpfs", flags, "mode=755")
    for controller, path in pairs(groups or {}) do
      local dir = target .. "/" .. controller
      try("cannot create " .. dir, lfs.mkdir(dir))
      mount(dir, path, dir, nil, BIND)
      mount(dir .. " read-only", nil, dir, nil, REMOUNT | BIND | RDONLY | flags)
    end
  end
  mount("/sys/fs/cgroup read-only", nil, target, nil, REMOUNT | BIND | RDONLY | flags)
end

--- A fresh /dev: device nodes, a private devpts, /dev/shm, the usual links,
-- and the terminal as /dev/console under -t.
function M.mount_dev(root, console, shm_size)
  local dev = ensure(root.path, "/dev")
  mount("/dev", "tmpfs", dev, "tmpfs", NOSUID, "mode=755,size=65536k")
  -- 0666 as docker's, which the umask lbox runs with would cut
  local umask = core.umask(0)
  for _, d in ipairs(DEVICES) do
    try("cannot create /dev/" .. d[1], core.mknod(dev .. "/" .. d[1], "char", tonumber("666", 8), d[2], d[3]))
  end
  core.umask(umask)
  for name, target in pairs(DEV_LINKS) do
    try("cannot link /dev/" .. name, lfs.link(target, dev .. "/" .. name, true))
  end
  for _, sub in ipairs { "pts", "shm", "mqueue" } do lfs.mkdir(dev .. "/" .. sub) end
  mount("/dev/pts", "devpts", dev .. "/pts", "devpts", NOSUID | NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
  mount("/dev/shm", "shm", dev .. "/shm", "tmpfs", NOSUID | NODEV | NOEXEC,
    "mode=1777,size=" .. (shm_size or 65536 * 1024))
  mount("/dev/mqueue", "mqueue", dev .. "/mqueue", "mqueue", NOSUID | NODEV | NOEXEC)
  if console then
    fs.write_file(dev .. "/console", "")
    mount("/dev/console", console, dev .. "/console", nil, BIND)
  end
end

--- Bind each volume { host, target, readonly } at its target inside the
-- root, nodev.
function M.mount_volumes(root, volumes)
  for _, v in ipairs(volumes) do
    local target = ensure(root.path, v.target, fs.kind(v.host) ~= "directory")
    mount(v.target, v.host, target, nil, BIND | REC)
    if v.readonly then
      mount(v.target .. " read-only", nil, target, nil, REMOUNT | BIND | RDONLY | REC)
    end
    -- after the remount, which would clear it
    no_devices(v.target, target)
  end
end

local TMPFS_FLAGS = { rdonly = RDONLY, noexec = NOEXEC, nosuid = NOSUID, nodev = NODEV }

--- An empty tmpfs at each { target, flags, data } (lbox.spec) inside the
-- root (writable even with --read-only, unless its flags say rdonly).
function M.mount_tmpfs(root, mounts)
  for _, m in ipairs(mounts) do
    local flags = NODEV
    for name in pairs(m.flags) do flags = flags | TMPFS_FLAGS[name] end
    mount(m.target, "tmpfs", ensure(root.path, m.target), "tmpfs", flags, m.data)
  end
end

--- /etc/hostname, /etc/hosts and /etc/resolv.conf from the container's directory.
function M.mount_etc_files(root)
  for name, source in pairs(root.files) do
    mount("/etc/" .. name, source, ensure(root.path, "/etc/" .. name, true), nil, BIND)
  end
end

--- Hide what docker hides, make read-only what it makes read-only.
function M.mask_paths(root)
  for _, path in ipairs(M.MASKED_PATHS) do
    local target = root.path .. path
    local kind = fs.kind(target)
    if kind == "directory" then
      mount(path, "tmpfs", target, "tmpfs", RDONLY | NOSUID | NODEV | NOEXEC, "size=0")
    elseif kind then
      mount(path, root.path .. "/dev/null", target, nil, BIND)
    end
  end
  for _, path in ipairs(M.READONLY_PATHS) do
    local target = root.path .. path
    if fs.kind(target) then
      mount(path, target, target, nil, BIND | REC)
      mount(path .. " read-only", nil, target, nil, REMOUNT | BIND | RDONLY | NOSUID | NODEV | NOEXEC)
    end
  end
end

--- Make the root the container's `/` and detach the old one, so that nothing
-- of the host stays reachable (pivot_root(".", "."), as crun does).
function M.pivot(root)
  try("cannot enter the container's root", core.chdir(root.path))
  try("cannot pivot_root", core.pivot_root(".", "."))
  try("cannot detach the old root", core.umount(".", core.MNT_DETACH))
  try("cannot enter the container's root", core.chdir("/"))
end

--- --read-only: the root itself read-only; /dev, /proc and volumes keep their own modes.
function M.make_read_only()
  mount("/ read-only", nil, "/", nil, REMOUNT | BIND | RDONLY | NODEV)
end

return M

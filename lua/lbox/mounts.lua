--- The mounts of a container's root, made by its init in its own mount
-- namespace, in the order lbox.inside's steps give, up to pivot_root and
-- --read-only. Paths in the image are resolved by lbox.paths, never
-- outside the root.
local cgroups = require "lbox.cgroups"
local core = require "lbox.core"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local lfs = require "lfs"
local paths = require "lbox.paths"
local store = require "lbox.store"

local M = {}

local try = errors.try
local NOSUID, NODEV, NOEXEC = core.MS_NOSUID, core.MS_NODEV, core.MS_NOEXEC
local BIND, REC, RDONLY, REMOUNT = core.MS_BIND, core.MS_REC, core.MS_RDONLY, core.MS_REMOUNT
local ATTR_RDONLY, ATTR_NODEV, RECURSIVE = core.MOUNT_ATTR_RDONLY, core.MOUNT_ATTR_NODEV, core.AT_RECURSIVE
local ATTR_LOCKED_DOWN = core.MOUNT_ATTR_RDONLY | core.MOUNT_ATTR_NOSUID | core.MOUNT_ATTR_NODEV | core.MOUNT_ATTR_NOEXEC

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

-- A directory (or with `file`, an empty file) at `path` inside `root`.
local function ensure(root, path, file)
  local target = paths.secure_join(root, path)
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

-- `path` and every mount below it read-only: a bind remount would ignore
-- MS_REC and leave the mounts below writable.
local function read_only_tree(what, path, attrs)
  try("cannot make " .. what .. " read-only", core.mount_setattr(path, attrs or ATTR_RDONLY, 0, RECURSIVE))
end

-- Device nodes in an image or a volume never open a host device: a
-- container without device rules (lbox.spec.plan's `nodev`) gets lbox's own
-- /dev, and every other mount of its files nodev, submounts included.
local function no_devices(what, path)
  try("cannot mount " .. what .. " nodev", core.mount_setattr(path, ATTR_NODEV, 0, RECURSIVE))
end

--- Mount the root, with `nodev` nodev: the image's overlay, or a bind of
-- the directory (pivot_root needs a mount point). With `read_only`, what
-- the directory has mounted below it is made read-only now, before lbox
-- mounts its own (/proc, /dev, volumes) there; the root itself stays
-- writable for their mount points until make_read_only.
function M.mount_root(root, read_only, nodev)
  if root.mount_fd then
    -- made by lbox for a user namespace (lbox.userns): attached here
    try("cannot mount the container's root", core.move_mount(root.mount_fd, root.path))
    core.close(root.mount_fd)
    root.mount_fd = nil
    if root.overlay then return end
    if nodev then no_devices("the container's root", root.path) end
    if read_only then read_only_tree("the container's root", root.path) end
    if read_only then try("cannot make the container's root writable", core.mount_setattr(root.path, 0, ATTR_RDONLY)) end
  elseif root.overlay then
    local ok, msg = core.mount("overlay", root.path, "overlay", nodev and NODEV or 0, root.overlay)
    if not ok then
      errors.raise("cannot mount the container's root: " .. msg .. ": the store (" .. store.root()
        .. ", or $LBOX_STORE) must be on a filesystem overlayfs can write to, such as ext4, xfs or tmpfs")
    end
  else
    mount("the container's root", root.path, root.path, nil, BIND | REC)
    if nodev then no_devices("the container's root", root.path) end
    if read_only then
      -- a root the host gave read-only stays so (access says EROFS)
      local writable = core.access(root.path, "write")
      read_only_tree("the container's root", root.path)
      if writable then
        try("cannot make the container's root writable", core.mount_setattr(root.path, 0, ATTR_RDONLY))
      end
    end
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
function M.mount_cgroups(root, unified, groups, own_namespace)
  local target = root.path .. "/sys/fs/cgroup"
  local flags = NOSUID | NOEXEC | NODEV
  if unified and not own_namespace then
    -- a cgroup2 mount made from the host's cgroup namespace sets the
    -- hierarchy's options (nsdelegate, memory_recursiveprot) for the whole
    -- machine: the host's view, bound, leaves them as they are
    mount("/sys/fs/cgroup", "/sys/fs/cgroup", target, nil, BIND | REC)
  elseif unified then
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

-- The host's device node `host` bound at `path` (a user namespace may
-- not make nodes: runc's way for it).
local function bind_node(host, path)
  fs.write_file(path, "")
  mount(path, host, path, nil, BIND)
end

--- A fresh /dev: device nodes (with `bind_nodes`, the host's, bound), a
-- private devpts, /dev/shm, the usual links, and the terminal as
-- /dev/console under -t.
function M.mount_dev(root, console, shm_size, bind_nodes)
  local dev = ensure(root.path, "/dev")
  mount("/dev", "tmpfs", dev, "tmpfs", NOSUID, "mode=755,size=65536k")
  M.dev_nodes(dev, bind_nodes)
  for _, sub in ipairs { "pts", "shm", "mqueue" } do lfs.mkdir(dev .. "/" .. sub) end
  mount("/dev/pts", "devpts", dev .. "/pts", "devpts", NOSUID | NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
  mount("/dev/shm", "shm", dev .. "/shm", "tmpfs", NOSUID | NODEV | NOEXEC, "mode=1777,size=" .. (shm_size or 65536 * 1024))
  mount("/dev/mqueue", "mqueue", dev .. "/mqueue", "mqueue", NOSUID | NODEV | NOEXEC)
  M.dev_console(dev, console)
end

--- The device nodes and links every container's /dev has, in the
-- directory `dev` (a fresh tmpfs); with `bind_nodes`, the host's nodes
-- bound (in a user namespace, where none can be made).
function M.dev_nodes(dev, bind_nodes)
  -- the modes asked for, whatever umask lbox was started with
  local umask = core.umask(0)
  for _, d in ipairs(DEVICES) do
    if bind_nodes then
      bind_node("/dev/" .. d[1], dev .. "/" .. d[1])
    else
      local ok, msg = core.mknod(dev .. "/" .. d[1], "char", tonumber("666", 8), d[2], d[3])
      if not ok then
        core.umask(umask)
        errors.raise("cannot create /dev/" .. d[1] .. ": " .. msg)
      end
    end
  end
  core.umask(umask)
  for name, target in pairs(DEV_LINKS) do
    if not lfs.symlinkattributes(dev .. "/" .. name) then
      try("cannot link /dev/" .. name, lfs.link(target, dev .. "/" .. name, true))
    end
  end
end

--- The terminal `console` (a pty's slave path | nil) as `dev`/console.
function M.dev_console(dev, console)
  if console then
    fs.write_file(dev .. "/console", "")
    mount("/dev/console", console, dev .. "/console", nil, BIND)
  end
end

--- The device nodes `devices` (from lbox.devices) in the container's
-- /dev (or wherever their target is), root's, with the host node's mode;
-- with `bind_nodes`, the host's nodes bound.
function M.make_devices(root, devices, bind_nodes)
  for _, d in ipairs(devices) do
    local path = paths.secure_join(root.path, d.target)
    try("cannot create the directory of " .. d.target, fs.mkdir_p(path:match("^(.*)/[^/]*$")))
    if fs.kind(path) then os.remove(path) end
    if bind_nodes then
      bind_node(d.host, path)
    else
      -- the host node's mode, whatever umask lbox was started with
      local umask = core.umask(0)
      local ok, msg = core.mknod(path, d.type == "b" and "block" or "char", d.mode, d.major, d.minor)
      core.umask(umask)
      if not ok then errors.raise("cannot create device " .. d.target .. ": " .. msg) end
    end
  end
end

--- Bind each volume { host, target, readonly } at its target inside the
-- root, with `nodev` nodev.
function M.mount_volumes(root, volumes, nodev)
  for _, v in ipairs(volumes) do
    local target = ensure(root.path, v.target, fs.kind(v.host) ~= "directory")
    mount(v.target, v.host, target, nil, BIND | REC)
    if nodev then no_devices(v.target, target) end
    if v.readonly then read_only_tree(v.target, target) end
  end
end

local TMPFS_FLAGS = { rdonly = RDONLY, noexec = NOEXEC, nosuid = NOSUID, nodev = NODEV }

--- An empty tmpfs at each { target, flags, data } (lbox.spec) inside the
-- root (writable even with --read-only, unless its flags say rdonly).
function M.mount_tmpfs(root, tmpfs_mounts)
  for _, m in ipairs(tmpfs_mounts) do
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

--- Hide what docker hides (or the paths `masked`), make read-only what it
-- makes read-only (or the paths `readonly`).
function M.mask_paths(root, masked, readonly)
  for _, path in ipairs(masked or M.MASKED_PATHS) do
    local target = root.path .. path
    local kind = fs.kind(target)
    if kind == "directory" then
      mount(path, "tmpfs", target, "tmpfs", RDONLY | NOSUID | NODEV | NOEXEC, "size=0")
    elseif kind then
      mount(path, root.path .. "/dev/null", target, nil, BIND)
    end
  end
  for _, path in ipairs(readonly or M.READONLY_PATHS) do
    local target = root.path .. path
    if fs.kind(target) then
      mount(path, target, target, nil, BIND | REC)
      read_only_tree(path, target, ATTR_LOCKED_DOWN)
    end
  end
end

-- A mount's options (the OCI runtime-spec's words) as mount(2) flags that
-- set or clear, propagation, and the rest as the filesystem's data.
local OPTION_FLAGS = {
  ro = { RDONLY }, rw = { RDONLY, true }, nosuid = { NOSUID }, suid = { NOSUID, true },
  nodev = { NODEV }, dev = { NODEV, true }, noexec = { NOEXEC }, exec = { NOEXEC, true },
  sync = { core.MS_SYNCHRONOUS }, async = { core.MS_SYNCHRONOUS, true }, dirsync = { core.MS_DIRSYNC },
  mand = { core.MS_MANDLOCK }, nomand = { core.MS_MANDLOCK, true },
  atime = { core.MS_NOATIME, true }, noatime = { core.MS_NOATIME },
  diratime = { core.MS_NODIRATIME, true }, nodiratime = { core.MS_NODIRATIME },
  relatime = { core.MS_RELATIME }, norelatime = { core.MS_RELATIME, true },
  strictatime = { core.MS_STRICTATIME }, nostrictatime = { core.MS_STRICTATIME, true },
  bind = { BIND }, rbind = { BIND | REC }, remount = { REMOUNT }, defaults = { 0 },
}
local PROPAGATION = {
  private = core.MS_PRIVATE, rprivate = core.MS_PRIVATE | REC, shared = core.MS_SHARED,
  rshared = core.MS_SHARED | REC, slave = core.MS_SLAVE, rslave = core.MS_SLAVE | REC,
  unbindable = core.MS_UNBINDABLE, runbindable = core.MS_UNBINDABLE | REC,
}

--- Is `option` one a mount list entry may have (else it goes to the
-- filesystem as data, as "mode=755" does)? For lbox.oci_config.
function M.known_option(option)
  return OPTION_FLAGS[option] ~= nil or PROPAGATION[option] ~= nil or option == "rro"
end

--- `options` (a list of words) as flags, propagation flags, data, and
-- whether the tree is to be read-only recursively (rro).
local function parse_options(options)
  local flags, propagation, data, recursive_ro = 0, {}, {}, false
  for _, option in ipairs(options or {}) do
    local flag = OPTION_FLAGS[option]
    if flag then
      flags = flag[2] and (flags & ~flag[1]) or (flags | flag[1])
    elseif PROPAGATION[option] then
      propagation[#propagation + 1] = PROPAGATION[option]
    elseif option == "rro" then
      recursive_ro = true
    else
      data[#data + 1] = option
    end
  end
  return flags, propagation, #data > 0 and table.concat(data, ",") or nil, recursive_ro
end

--- The spec's `mounts`, in order, inside the root: each { destination,
-- type, source, options } as the OCI runtime-spec means it. They replace
-- lbox's own /proc, /sys, cgroups and /dev; a tmpfs at /dev gets the usual
-- nodes and links (and the console), a cgroup file system lbox's view of
-- the container's groups (v1 or v2), a sysfs the host's, read-only, where
-- the kernel refuses a new one. `nodev`: binds are nodev (lbox.spec.plan).
function M.mount_list(root, list, ctx)
  for _, m in ipairs(list) do
    local flags, propagation, data, recursive_ro = parse_options(m.options)
    local is_bind = flags & BIND ~= 0
    local source = m.source
    if is_bind and source and source:sub(1, 1) ~= "/" then
      errors.raise(string.format("mount %s: a bind mount's source must be an absolute path", m.destination))
    end
    local target = ensure(root.path, m.destination, is_bind and fs.kind(source) ~= "directory")
    if m.type == "cgroup" or m.type == "cgroup2" then
      if m.destination ~= "/sys/fs/cgroup" then
        errors.raise(string.format("mount %s: lbox mounts cgroups at /sys/fs/cgroup only", m.destination))
      end
      M.mount_cgroups(root, cgroups.unified(), ctx.spec.cgroup_paths, ctx.spec.namespaces.cgroup)
    elseif m.type == "sysfs" and not is_bind then
      if not core.mount("sysfs", target, "sysfs", flags) then
        mount(m.destination, "/sys", target, nil, BIND | REC)
        read_only_tree(m.destination, target, ATTR_LOCKED_DOWN)
      end
    elseif is_bind then
      mount(m.destination, source, target, nil, flags & (BIND | REC))
      if ctx.plan.nodev then no_devices(m.destination, target) end
      local rest = flags & ~(BIND | REC)
      if rest ~= 0 then mount(m.destination, nil, target, nil, REMOUNT | BIND | rest) end
    else
      mount(m.destination, source or m.type, target, m.type, flags, data)
      if m.destination == "/dev" and m.type == "tmpfs" then
        M.dev_nodes(target)
        M.dev_console(target, ctx.console)
      end
    end
    for _, how in ipairs(propagation) do mount(m.destination, nil, target, nil, how) end
    if recursive_ro then read_only_tree(m.destination, target) end
  end
end

--- Write each `sysctl` (name -> value, "net.ipv4.ip_forward") under the
-- container's /proc/sys, mounted by then.
function M.write_sysctl(root, sysctl)
  for name, value in pairs(sysctl) do
    local path = root.path .. "/proc/sys/" .. name:gsub("%.", "/")
    local f, msg = io.open(path, "w")
    local ok = f and f:write(value)
    if f then ok, msg = f:close() end
    if not ok then errors.raise(string.format("cannot set sysctl %s: %s", name, tostring(msg))) end
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

--- --read-only: the root itself read-only (what was mounted below it with
-- the directory already is: mount_root); /dev, /proc, volumes and tmpfs
-- keep their own modes.
function M.make_read_only()
  try("cannot make / read-only", core.mount_setattr("/", ATTR_RDONLY))
end

return M

--- A container's root filesystem on the host, in lbox, around the
-- container's life: its directory in the store, with its copy-on-write
-- layer and /etc files (`prepare`), removed at its end (`remove`). The
-- mounts made of it inside the container are lbox.mounts'.
local core = require "lbox.core"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local index = require "lbox.index"
local state = require "lbox.state"
local store = require "lbox.store"
local workload = require "lbox.workload"

local M = {}

local try = errors.try

M.container_dir = state.dir

--- The overlay mount options of a container's layer in `dir` on the image
-- root `lower`.
function M.overlay_options(lower, dir)
  return string.format("lowerdir=%s,upperdir=%s/upper,workdir=%s/work", lower, dir, dir)
end
local overlay_options = M.overlay_options

--- In lbox, before anything else is made: the container's directory in
-- the store, locked while the container lives, and its recorded state.
-- Under the store lock: the name must be free and the image (plan.lower,
-- lbox.spec.plan) still there. Pushes on `undo` (an lbox.undo list) the
-- directory's removal (none for a kept container) and, to run after it,
-- the lock's release.
function M.claim(id, spec, plan, undo)
  local dir = M.container_dir(id)
  -- one at a time through here: two containers never take one name, an
  -- image is not removed while a container takes it, and a sweep never sees
  -- a directory between its creation and its lock
  local store_lock <close> = store.lock() -- luacheck: no unused (held until return)
  state.sweep()
  if spec.name then
    local other = state.named(spec.name)
    if other and other.id ~= id then -- itself when the monitor restarts it
      errors.raise(string.format("the name %q is taken by container %s: remove it or choose another",
        spec.name, other.id:sub(1, 12)))
    end
  end
  local removed = false -- since the plan was made
  for layer in (plan.lower or ""):gmatch("[^:]+") do removed = removed or not fs.exists(layer) end
  if removed then
    errors.raise(string.format("no image %q: see lbox image ls, or import one with lbox image import", spec.image))
  end
  -- the lock is let go of last: no sweep removes the directory under us
  local held = {}
  undo:push("unlock the container's directory", function()
    if held.fd then core.close(held.fd) end
  end)
  undo:push("remove the container's directory", function()
    if spec.keep then return true end
    local ok, msg = M.remove(id)
    if ok then index.remove(id, spec.name) end
    return ok, msg
  end)
  index.add(id, spec.name, spec.keep)
  try("cannot create the container's directory", fs.mkdir_p(dir))
  held.fd = try("cannot lock the container's directory", core.open(dir .. "/lock", "create"))
  core.flock(held.fd, "exclusive")
  state.write(id, {
    id = id, name = spec.name, image = spec.image or spec.rootfs, command = spec.command, status = "created",
    created = os.time(), keep = spec.keep, hostname = spec.hostname, env = spec.env, workdir = spec.workdir,
    user = spec.user, lower = plan.lower, capabilities = spec.capabilities, no_new_privileges = spec.no_new_privileges,
    ulimits = plan.ulimits, -- for exec
    labels = next(spec.labels or {}) and spec.labels or nil, -- the image's, for inspect
  })
  -- for exec, which confines its commands with the same filter
  if plan.seccomp_program then state.write_seccomp_program(id, plan.seccomp_program) end
end

--- In lbox, in the claimed directory: the copy-on-write layer on the
-- image's root (plan.lower), the missing host directories of volumes (as
-- docker makes them), and the /etc files the container gets.
-- @return the root description the init mounts:
--   { path, overlay = mount options | nil, files = { name = host path } }
function M.prepare(id, spec, plan)
  local dir = M.container_dir(id)
  local root = { files = {}, path = spec.rootfs }
  if plan.lower then
    for _, sub in ipairs { "upper", "work", "merged" } do
      try("cannot create the container's layer", fs.mkdir_p(dir .. "/" .. sub))
    end
    root.path, root.overlay = dir .. "/merged", overlay_options(plan.lower, dir)
  end
  for _, v in ipairs(spec.volumes) do
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
  return root
end

--- In lbox, after the container ended: remove its directory. The layer's
-- mounts lived in the container's mount namespace and went with it.
function M.remove(id)
  return fs.remove_tree(M.container_dir(id))
end

return M

--- A container's root filesystem to read from, for commit and export: a
-- running container's through its PID 1, an ended one's layer mounted by a
-- helper process.
local core = require "lbox.core"
local errors = require "lbox.errors"
local inside = require "lbox.inside"
local options = require "lbox.options"
local rootfs = require "lbox.rootfs"
local state = require "lbox.state"
local userns = require "lbox.userns"

local M = {}

local try = errors.try
local overlay_options = rootfs.overlay_options

--- The root filesystem of container `ref` (an id prefix or a name), to
-- read from: a running container's as its init sees it; an ended one's
-- layer over its image, mounted read-only in a mount namespace of a helper
-- process, which ends (and the mount with it) when the result is closed
-- or lbox dies; with opts.writable, mounted read-write (lbox cp into it).
-- Raises a user error when there is no such container. A container in a
-- user namespace gives its maps as `userns` (lbox.userns).
-- @return to-be-closed { path, userns = maps | nil }
function M.open(ref, opts)
  local found = state.find(ref)
  local view = setmetatable({ userns = found.userns, dir = rootfs.container_dir(found.id) }, { __close = function(v)
    if v.process then core.close(v.process) end
    if v.hold then core.close(v.hold) end
    if v.pid then core.waitpid(v.pid) end
    if v.remove_maps then v.remove_maps() end
  end })
  -- a running container's PID 1, if it is still the recorded process (not
  -- one that took its number); else it ended: its layer, below
  view.process = state.open_process(found)
  if view.process then
    view.path = "/proc/" .. found.pid .. "/root"
    return view
  end
  local dir = rootfs.container_dir(found.id)
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
    inside.guard(ready_write, "the layer's helper", function()
      try("cannot set the parent-death signal", core.set_pdeathsig(core.SIGKILL))
      try("cannot make mounts private", core.mount(nil, "/", nil, core.MS_REC | core.MS_PRIVATE))
      try("cannot mount it", core.mount("overlay", dir .. "/merged", "overlay",
        (opts and opts.writable and 0 or core.MS_RDONLY) | core.MS_NODEV,
        overlay_options(found.lower, dir)))
    end)
    inside.ready(ready_write)
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
  local report, ready = inside.read_report(ready_read)
  core.close(ready_read)
  if not ready then
    getmetatable(view).__close(view)
    errors.raise(string.format("cannot mount the layer of container %s: %s", found.id:sub(1, 12),
      report and report.message or "its helper process died"))
  end
  view.path = "/proc/" .. pid .. "/root" .. dir .. "/merged"
  return view
end

--- The command line of commit and export, `CONTAINER OTHER` (parsed by
-- options.command with `command`, whose operands it sets): the container's
-- view (M.open) and OTHER, or nothing after --help. The view of a
-- container in a user namespace has `tar_options` too, for GNU tar to read
-- its files with the owners the container sees.
-- @return to-be-closed view, string
function M.open_command(command, argv)
  command.operands = { 2, 2 }
  local opts, operands = options.command(command, argv)
  if not opts then return nil end
  local view = M.open(operands[1])
  if view.userns then
    view.tar_options, view.remove_maps = userns.tar_owner_options(view.path, view.userns, view.dir)
  end
  return view, operands[2]
end

return M

--- Copying into a container, as docker cp HOST_SRC CONTAINER:DEST does: a
-- running container's root as its mount namespace shows it (volumes
-- included), an ended and kept one's layer. The files become the
-- container's root's unless the archive (`-`: a tarball on stdin) says
-- otherwise.
--
-- The host builds and checks a tarball; the extraction runs in a child
-- whose root is the container's, so that every path the container made
-- (a symlink to /, a directory swapped for one while copying) resolves
-- inside it and never on the host. The child runs the host's static
-- busybox tar from a descriptor opened before its chroot.
local core = require "lbox.core"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local lfs = require "lfs"
local paths = require "lbox.paths"
local tar = require "lbox.tar"
local views = require "lbox.views"

local M = {}

local try = errors.try

-- GNU tar's --transform expression that renames member `from` and what is
-- below it to `to` (not symlinks' targets: those are the container's paths)
local function rename_expression(from, to)
  local pattern = from:gsub("[][\\.*^$,]", "\\%0")
  local replacement = to:gsub("[\\&,]", "\\%0")
  return string.format("s,^%s\\(/\\|$\\),%s\\1,S", pattern, replacement)
end

-- The source as tar sees it: the directory to change to and the member to
-- archive; "DIR/." (or "/") is DIR's contents, as docker cp's.
local function split_source(source)
  local trimmed = source:gsub("/+$", "")
  if trimmed == "" then return "/", "." end
  local dir, name = trimmed:match("^(.*)/([^/]+)$")
  if not name then dir, name = ".", trimmed end
  if dir == "" then dir = "/" end
  return dir, name
end

-- Write stdin to `archive`.
local function save_stdin(archive)
  local out = assert(io.open(archive, "wb"))
  while true do
    local chunk = io.stdin:read(65536)
    if not chunk then break end
    out:write(chunk)
  end
  out:close()
end

-- Extract `archive` in directory `into` (a path inside the root `root`,
-- a host path), in a child whose root is `root`; with `userns` (a pidfd of
-- a container in a user namespace), as that namespace's root, so that the
-- owners are the container's.
local function extract(root, into, archive, what, userns)
  local busybox = fs.find_program("busybox")
  if not busybox then errors.raise("lbox cp into a container needs busybox: apt-get install busybox-static") end
  local program = try("cannot open " .. busybox, core.open(busybox, "r"))
  local input, msg = core.open(archive, "r")
  if not input then
    core.close(program)
    errors.raise("cannot read the archive: " .. msg)
  end
  local pid, why = core.clone(0)
  if pid == 0 then
    local ok, err = true, nil
    if userns then
      ok, err = core.setns(userns, core.CLONE_NEWUSER)
      if ok then ok, err = core.setgroups({}) end
      if ok then ok, err = core.setgid(0) end
      if ok then ok, err = core.setuid(0) end
    end
    if ok then ok, err = core.chroot(root) end
    if ok then ok, err = core.chdir(into) end
    if ok then ok, err = core.dup2(input, 0) end
    -- numbers, not the names of the container's /etc/passwd
    if ok then err = select(2, core.fexecve(program, { "tar", "-x", "--numeric-owner", "-f", "-" }, {})) end
    io.stderr:write("lbox: error: cannot copy into ", what, ": ", tostring(err), "\n")
    core._exit(125)
  end
  core.close(program)
  core.close(input)
  if not pid then errors.raise("cannot create a process: " .. tostring(why)) end
  local _, how, code = core.waitpid(pid)
  if how ~= "exited" or code ~= 0 then
    -- busybox tar said why on stderr; the child's own failure as well
    errors.raise(string.format("cannot copy into %s (%s %s)", what, how, tostring(code)), code == 125 and 125 or 1)
  end
end

--- Copy `source` (a host path, or "-": a tarball on stdin) to `path` in
-- container `ref`, as docker cp: into `path` when it is a directory, else
-- as `path` (made, or replaced when a file). Raises a user error.
function M.copy(source, ref, path)
  local from_stdin = source == "-"
  if not from_stdin and not fs.kind(source) then
    errors.raise(string.format("%s: no such file or directory", source))
  end
  local root <close> = views.open(ref, { writable = true })
  if root.userns and not root.process then
    -- its image's files are the host's ids there, which its root may not write over
    errors.raise(string.format("cannot copy into %s: it runs in a user namespace and has ended; start it first", ref))
  end
  -- symlinks resolved as the container sees them; kinds as the host sees
  -- the result (the root itself is a link: /proc/PID/root)
  local resolved = paths.secure_join(root.path, path)
  local function kind(host_path) return lfs.attributes(host_path, "mode") end
  local function inner(host_path) return (host_path:sub(#root.path + 1):gsub("^/*", "/")) end
  local dir, name
  if not from_stdin then dir, name = split_source(source) end
  local into, rename
  if kind(resolved) == "directory" then
    into = inner(resolved)
  else
    if from_stdin then errors.raise(string.format("%s: the destination of a tarball must be a directory", path)) end
    if kind(resolved) and kind(source) == "directory" then
      errors.raise(string.format("cannot copy directory %s over file %s", source, path))
    end
    local parent, base = resolved:match("^(.*)/([^/]+)$")
    if path:match("/$") or not base or base == "." or base == ".." or kind(parent) ~= "directory" then
      errors.raise(string.format("%s: no such directory in %s", path, ref))
    end
    into, rename = inner(parent), base
  end

  local archive = os.tmpname()
  local ok, err = pcall(function()
    if from_stdin then
      save_stdin(archive)
    else
      -- the container's root's files, whoever owns them here
      local transform = rename and " --transform=" .. fs.quote(rename_expression(name, rename)) or ""
      fs.run("cannot read " .. source, "tar -C %s --numeric-owner --owner=0 --group=0" .. transform
        .. " -cf %s -- %s", dir, archive, name)
    end
    local f = assert(io.open(archive, "rb"))
    local entries, msg = tar.entries(f)
    f:close()
    if not entries then errors.raise("cannot copy " .. source .. ": " .. msg) end
    local checked, why = tar.check(entries)
    if not checked then errors.raise("cannot copy " .. source .. ": " .. why) end
    extract(root.path, into, archive, ref .. ":" .. path, root.userns and root.process)
  end)
  os.remove(archive)
  if not ok then error(err, 0) end
end

return M

-- lbox cp CONTAINER:SRC HOST_DEST: copy a file or directory out of a
-- container (running, or ended and kept), as docker cp: into HOST_DEST when
-- it is a directory, else as HOST_DEST. Symlinks inside the container are
-- followed as the container sees them; what is copied is checked as an
-- imported image is (lbox.tar) and owned by the caller.
-- lbox cp HOST_SRC|- CONTAINER:DEST: the other way (lbox.copy_in).
local copy_in = require "lbox.copy_in"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local options = require "lbox.options"
local paths = require "lbox.paths"
local tar = require "lbox.tar"
local views = require "lbox.views"

local opts, operands = options.command({
  name = "cp", synopsis = { "CONTAINER:SRC HOST_DEST", "HOST_SRC|- CONTAINER:DEST" },
  summary = "copy files out of or into a container",
  description = "Copies a file or directory out of a container (running, or ended and kept), as docker cp: "
    .. "into HOST_DEST when it is a directory, else as HOST_DEST. Symlinks are followed as the container "
    .. "sees them; what is copied is checked as an import is and owned by the caller. Into a container: "
    .. "HOST_SRC into DEST when it is a directory, else as DEST, owned by the container's root; - reads a "
    .. "tarball from stdin, owners as it says, into the directory DEST. HOST_SRC/. is the directory's contents.",
  operands = { 2, 2 },
}, { ... })
if not opts then return 0 end
local source, dest = operands[1], operands[2]
local ref, path = source:match("^([^:/]+):(.+)$")
if not ref then
  local into_ref, into_path = dest:match("^([^:/]+):(.+)$")
  if not into_ref then errors.raise("usage: lbox cp CONTAINER:SRC HOST_DEST | HOST_SRC CONTAINER:DEST (see --help)") end
  if into_path:sub(1, 1) ~= "/" then into_path = "/" .. into_path end
  copy_in.copy(source, into_ref, into_path)
  return 0
end
if path:sub(1, 1) ~= "/" then path = "/" .. path end

local root <close> = views.open(ref)
local resolved = paths.secure_join(root.path, path)
if not fs.kind(resolved) then errors.raise(string.format("%s: no such file or directory in %s", path, ref)) end
local dir, name = resolved:match("^(.*)/([^/]+)$")
if not name then dir, name = resolved, "." end

local target = fs.kind(dest) == "directory" and dest .. "/" .. (name == "." and "root" or name) or dest
local parent = target:match("^(.*)/[^/]*$") or "."
if fs.kind(parent) ~= "directory" then errors.raise(string.format("%s: no such directory", parent)) end
if fs.kind(target) == "directory" then errors.raise(string.format("%s exists: remove it first", target)) end

-- an archive first, checked, then extracted beside the target and moved in
local staging = parent .. "/.lbox-cp-" .. fs.random_hex(6)
errors.try("cannot copy to " .. parent, fs.mkdir_p(staging))
local ok, err = pcall(function()
  fs.run("cannot read " .. path .. " in " .. ref, "tar -C %s --one-file-system -cf %s/copy.tar -- %s",
    dir, staging, name)
  local f = assert(io.open(staging .. "/copy.tar", "rb"))
  local entries, msg = tar.entries(f)
  f:close()
  if not entries then errors.raise("cannot copy " .. path .. ": " .. msg) end
  local checked, why = tar.check(entries)
  if not checked then errors.raise("cannot copy " .. path .. ": " .. why) end
  errors.try("cannot copy", fs.mkdir_p(staging .. "/out"))
  fs.run("cannot copy to " .. parent, "tar -C %s/out --no-same-owner -xf %s/copy.tar", staging, staging)
  errors.try("cannot copy to " .. target, os.rename(staging .. "/out/" .. name, target))
end)
fs.remove_tree(staging)
if not ok then error(err, 0) end
return 0

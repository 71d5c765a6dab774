-- lbox image import FILE|DIR NAME | ls | rm NAME... | prune [-a]: lbox's image store.
local cjson = require "cjson"
local errors = require "lbox.errors"
local images = require "lbox.images"
local oci_layout = require "lbox.oci_layout"
local options = require "lbox.options"

local IMAGE = {
  name = "image",
  synopsis = { "import FILE.tar[.gz|.xz|.zst]|DIR|oci:DIR[:TAG]|docker-archive:FILE NAME",
               "save NAME oci:DIR[:TAG]|docker-archive:FILE", "ls",
               "inspect NAME...", "rm NAME...", "prune [-a]" },
  summary = "manage lbox's image store",
  description = "import: a docker export or podman export tarball (gzip, xz or zstd compressed, or not), or a "
    .. "directory, as image NAME of one layer; every tar header is checked first (no absolute paths, .., "
    .. "symlinks out of the image); oci:DIR[:TAG], the image of an OCI image layout (skopeo's, podman's), its "
    .. "blobs checked against their digests; docker-archive:FILE, the image of a docker save archive. save: an "
    .. "image as a new OCI image layout, layers "
    .. "gzip-compressed, or as a docker save archive (docker load reads it). ls: the images, with tag, id "
    .. "and size. inspect: their records and OCI "
    .. "configurations (Entrypoint, Cmd, Env, Labels...), as JSON. rm: remove images, and the layers "
    .. "no other image uses; refused while a container runs on one. prune: remove layers no image uses and "
    .. "what an interrupted pull left; with -a, every image no container uses too. The built-in busybox "
    .. "image is made from Debian's busybox-static on first use.",
  operands = { 1 },
}

local commands = {}

function commands.import(source, name, extra)
  if not source or not name or extra then
    errors.raise("usage: lbox image import FILE|DIR|oci:DIR[:TAG]|docker-archive:FILE NAME")
  end
  local layout = source:match("^oci:(.+)$")
  local image
  if source:match("^docker%-archive:.") then
    image = oci_layout.import_docker_archive(source:match("^docker%-archive:(.+)$"), name)
  elseif layout then
    local dir, tag = oci_layout.parse(layout)
    image = oci_layout.import(dir, tag, name)
  else
    image = images.import(source, name)
  end
  print(image.name)
end

function commands.save(name, destination, extra)
  local layout = destination and destination:match("^oci:(.+)$")
  local archive = destination and destination:match("^docker%-archive:(.+)$")
  if not name or not (layout or archive) or extra then
    errors.raise("usage: lbox image save NAME oci:DIR[:TAG]|docker-archive:FILE")
  end
  if archive then return oci_layout.save_docker_archive(name, archive) end
  local dir, tag = oci_layout.parse(layout)
  oci_layout.save(name, dir, tag)
end

-- Sizes as docker shows them: decimal units, three digits.
local function human(bytes)
  for _, unit in ipairs { { "GB", 1e9 }, { "MB", 1e6 }, { "kB", 1e3 } } do
    if bytes >= unit[2] then return string.format("%.3g%s", bytes / unit[2], unit[1]) end
  end
  return string.format("%dB", bytes)
end

-- "repo:tag" -> "repo", "tag"; a name without one is its own :latest.
local function split(name)
  local repository, digest = name:match("^(.*)@(.*)$")
  if repository then return repository, "<none>", digest end
  local tag
  repository, tag = name:match("^(.*):([^:/]+)$")
  if repository then return repository, tag end
  return name, "latest"
end

function commands.ls(extra)
  if extra then errors.raise("usage: lbox image ls") end
  print(string.format("%-40s %-12s %-12s %-9s %s", "REPOSITORY", "TAG", "IMAGE ID", "SIZE", "CREATED"))
  for _, m in ipairs(images.list()) do
    local repository, tag = split(m.name)
    -- an image from before layers has no id, size or date
    local id = m.id and m.id:gsub("^sha256:", ""):sub(1, 12)
    print(string.format("%-40s %-12s %-12s %-9s %s", repository, tag, id or "<none>",
      m.size and human(m.size) or "<none>", m.created or "<none>"))
  end
end

function commands.inspect(...)
  if select("#", ...) == 0 then errors.raise("usage: lbox image inspect NAME...") end
  local found = {}
  for _, name in ipairs { ... } do found[#found + 1] = images.inspect(name) end
  print(cjson.encode(found))
end

function commands.rm(...)
  if select("#", ...) == 0 then errors.raise("usage: lbox image rm NAME...") end
  for _, name in ipairs { ... } do
    images.remove(name)
    print(name)
  end
end

function commands.prune(flag, extra)
  if extra or (flag and flag ~= "-a" and flag ~= "--all") then errors.raise("usage: lbox image prune [-a]") end
  local removed = images.prune(flag ~= nil)
  for _, name in ipairs(removed.images) do print("untagged: " .. name) end
  for _, digest in ipairs(removed.layers) do print("deleted: " .. digest) end
end

local opts, args = options.command(IMAGE, { ... })
if not opts then return 0 end
local command = args[1]
if not commands[command] then errors.raise(string.format("unknown image command %q (see lbox image --help)", command)) end
commands[command](table.unpack(args, 2))
return 0

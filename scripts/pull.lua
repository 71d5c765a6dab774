-- lbox pull [--insecure] [-q] REGISTRY/NAME[:TAG|@DIGEST]: an image from a
-- registry (OCI distribution API), into lbox's store (lbox.registry).
local core = require "lbox.core"
local options = require "lbox.options"
local registry = require "lbox.registry"

local opts, args = options.command({
  name = "pull", synopsis = { "[--insecure] [-q] REGISTRY/NAME[:TAG|@DIGEST]" },
  summary = "pull an image from a registry",
  description = "Pulls an image from a registry speaking the OCI distribution API (docker's registry v2) into "
    .. "lbox's store, under the reference as given (tag default: latest). lbox has no default registry: the "
    .. "reference names one. A manifest list or OCI index gives this machine's platform. Every manifest and "
    .. "blob is checked against its digest before it is used; layers (gzip, zstd or plain tar) already in the "
    .. "store are not downloaded again; a pull that dies leaves no image, and the next one resumes its "
    .. "downloads. Credentials come from lbox login. Progress: a line per blob, and on a terminal curl's meter "
    .. "of it (bytes, rate, time left).",
  options = {
    { "insecure", help = "plain HTTP to this registry (no TLS)" },
    { "quiet", short = "q", help = "no progress, only the image's name" },
  },
  operands = { 1, 1 },
}, { ... })
if not opts then return 0 end
local image = registry.pull(args[1], { insecure = opts.insecure, quiet = opts.quiet,
                                       progress = not opts.quiet and core.isatty(2) })
print(image.name)
return 0

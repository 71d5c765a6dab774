-- lbox pause CONTAINER...: freeze every process of running containers, as docker pause (the cgroup freezer).
local options = require "lbox.options"
local pausing = require "lbox.pausing"

local opts, refs = options.command({
  name = "pause", synopsis = { "CONTAINER..." }, summary = "freeze containers",
  description = "Freezes every process of running containers with the cgroup freezer, as docker pause "
    .. "(v2: cgroup.freeze; v1: the freezer controller, which containers run with -d have).",
  operands = { 1 },
}, { ... })
if not opts then return 0 end
pausing.set(refs, true)
return 0

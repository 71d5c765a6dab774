-- lbox unpause CONTAINER...: thaw containers lbox pause froze.
local options = require "lbox.options"
local pausing = require "lbox.pausing"

local opts, refs = options.command({
  name = "unpause", synopsis = { "CONTAINER..." }, summary = "thaw paused containers",
  description = "Thaws containers lbox pause froze.",
  operands = { 1 },
}, { ... })
if not opts then return 0 end
pausing.set(refs, false)
return 0

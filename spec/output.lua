-- busted output: one line per test (gtest style), then the summary line CI
-- reads: "N passed, N failed" (errors count as failed; a pending test too,
-- since a spec that skips itself must not pass quietly).
return function(options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.gtest")(options)
  -- gtest.lua (busted 2.1.1) indexes element.trace of a file that failed to
  -- load without checking it, and the run ends with no summary: give it one
  busted.subscribe({ "error", "file" }, function(element, _, message)
    element.trace = element.trace or { short_src = element.name, currentline = 0 }
    io.write(tostring(element.name), ": ", tostring(message), "\n")
    return nil, true
  end, { priority = 1 })
  busted.subscribe({ "suite", "end" }, function()
    local failed = handler.failuresCount + handler.errorsCount + handler.pendingsCount
    io.write(string.format("%d passed, %d failed\n", handler.successesCount, failed))
    io.flush()
    return nil, true
  end, { priority = 2 })
  return handler
end

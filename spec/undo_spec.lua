-- lbox.undo: what was pushed runs in reverse, each once, all of them even
-- when one fails, on every way out of a scope.
local undo = require "lbox.undo"

describe("lbox.undo", function()
  it("runs what was pushed newest first, with its arguments, once", function()
    local ran = {}
    local list = undo.new()
    list:push("first", function(a, b) ran[#ran + 1] = a .. b end, "f", "1")
    list:push("second", function() ran[#ran + 1] = "second" end)
    assert.are.same({ "first", "second" }, list:names())
    assert.is_true(list:unwind())
    assert.are.same({ "second", "f1" }, ran)
    assert.is_true(list:unwind())
    assert.are.same({ "second", "f1" }, ran)
    assert.are.same({}, list:names())
  end)

  it("goes on past a failure and names the first one", function()
    local ran = {}
    local list = undo.new()
    list:push("kept going", function() ran[#ran + 1] = "oldest" end)
    list:push("raised", function() error("boom") end)
    list:push("returned", function() return nil, "it failed" end)
    local ok, msg = list:unwind()
    assert.is_nil(ok)
    assert.are.equal("returned: it failed", msg)
    assert.are.same({ "oldest" }, ran)
  end)

  it("unwinds when a to-be-closed list goes out of scope, by error too", function()
    local ran = {}
    local ok = pcall(function()
      local list <close> = undo.new()
      list:push("release", function() ran[#ran + 1] = "released" end)
      error("a step failed")
    end)
    assert.is_false(ok)
    assert.are.same({ "released" }, ran)
  end)

  it("refuses an undo without a name or a function", function()
    local list = undo.new()
    assert.has_error(function() list:push(nil, function() end) end)
    assert.has_error(function() list:push("x", "not a function") end)
  end)
end)

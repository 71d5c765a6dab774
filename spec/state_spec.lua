-- lbox.state: each container's recorded state in the store, whether its
-- owner still holds it, finding it by name or id, and the process it runs.
local core = require "lbox.core"
local fs = require "lbox.fs"
local helper = require "helper"
local index = require "lbox.index"
local state = require "lbox.state"

local function id_of(digit)
  return string.rep(digit, 64)
end

describe("lbox.state", function()
  local before, made
  before_each(function()
    before = helper.snapshot()
    made = {}
  end)
  after_each(function()
    for _, id in ipairs(made) do
      index.remove(id, (state.read(id) or {}).name)
      fs.remove_tree(state.dir(id))
    end
    helper.assert_no_leaks(before)
  end)

  -- a container directory with `record` as its state and a lock file,
  -- in the store's indexes as lbox.rootfs.claim puts it there
  local function record(id, fields)
    made[#made + 1] = id
    index.add(id, fields.name, fields.keep)
    assert(fs.mkdir_p(state.dir(id)))
    fs.write_file(state.dir(id) .. "/lock", "")
    fields.id = id
    state.write(id, fields)
  end

  -- hold the lock of `id` as its owner would; returns the descriptor
  local function own(id)
    local fd = assert(core.open(state.dir(id) .. "/lock", "rw"))
    assert.is_true(core.flock(fd, "exclusive", "nowait"))
    return fd
  end

  it("writes, reads back with integers, and merges updates", function()
    record(id_of("a"), { pid = 12, status = "created", name = "lbox-spec-state" })
    state.update(id_of("a"), { status = "running", exit_code = 3 })
    local s = state.read(id_of("a"))
    assert.are.same({ "integer", 12, "running", 3, "lbox-spec-state" },
      { math.type(s.pid), s.pid, s.status, s.exit_code, s.name })
    assert.is_nil(state.read(id_of("b")))
  end)

  it("tells a running container from one whose owner died", function()
    record(id_of("a"), { status = "running", pid = 1 })
    assert.is_false(state.owned(id_of("a")))
    local lost = state.current(id_of("a"))
    assert.are.same({ "exited", -1, true }, { lost.status, lost.exit_code, lost.lost })
    local fd = own(id_of("a"))
    assert.is_true(state.owned(id_of("a")))
    assert.are.equal("running", state.current(id_of("a")).status)
    core.close(fd)
  end)

  it("finds a container by name, full id or unique prefix; says when none or several match", function()
    record(id_of("a"), { name = "lbox-spec-first", created = 1 })
    record("ab" .. string.rep("0", 62), { created = 2 })
    assert.are.equal(id_of("a"), state.find("lbox-spec-first").id)
    assert.are.equal(id_of("a"), state.find(id_of("a")).id)
    assert.are.equal(id_of("a"), state.find("aaa").id)
    local ok, err = pcall(state.find, "a")
    assert.are.same({ false, 1 }, { ok, err.code })
    assert.matches("ambiguous", err.message)
    ok, err = pcall(state.find, "lbox-spec-none", 125)
    assert.are.same({ false, 125, "no such container: lbox-spec-none" }, { ok, err.code, err.message })
  end)

  it("indexes a store made before its indexes on first sweep, then finds and sweeps through them", function()
    fs.remove_tree(helper.store .. "/index")
    record(id_of("a"), { status = "running" })
    record(id_of("b"), { status = "exited", keep = true, name = "lbox-spec-kept" })
    assert.is_false(index.ready())
    state.sweep()
    assert.is_true(index.ready())
    assert.is_false(fs.exists(state.dir(id_of("a"))))
    assert.are.equal(id_of("b"), state.find("lbox-spec-kept").id)
    assert.are.equal(id_of("b"), state.find("bbbb").id)
    local function unkept(id)
      for _, other in ipairs(index.unkept()) do if other == id then return true end end
      return false
    end
    assert.is_false(unkept(id_of("a")))
    assert.is_false(unkept(id_of("b")))
    -- a container made now is in the index, and swept through it when its owner is gone
    record(id_of("c"), { status = "running" })
    assert.is_true(unkept(id_of("c")))
    state.sweep()
    assert.is_false(fs.exists(state.dir(id_of("c"))))
    assert.is_false(unkept(id_of("c")))
  end)

  it("names a process by pid and start time, so a reused pid names nothing", function()
    local pid = assert(core.clone(0))
    if pid == 0 then core.execve("/bin/sleep", { "sleep", "30" }, {}) core._exit(127) end
    finally(function()
      core.kill(pid, core.SIGKILL)
      core.waitpid(pid)
    end)
    local started = state.process_start(pid)
    assert.are.equal("integer", math.type(started))
    local s = { id = id_of("a"), status = "running", pid = pid, pid_start = started }
    local fd = assert(state.open_process(s))
    assert.is_true(core.pidfd_send_signal(fd, 0))
    core.close(fd)
    s.pid_start = started + 1 -- another process that took the number
    local none, why = state.open_process(s)
    assert.is_nil(none)
    assert.matches("is not running", why)
    assert.is_nil(state.open_process { id = id_of("a"), status = "exited", pid = pid, pid_start = started })
    assert.is_nil(state.process_start(0x3ffffff))
  end)

  it("sweeps the directories of dead owners, but not kept or owned ones", function()
    record(id_of("a"), { status = "running" })
    record(id_of("b"), { status = "exited", keep = true })
    record(id_of("c"), { status = "running" })
    local fd = own(id_of("c"))
    state.sweep()
    assert.is_false(fs.exists(state.dir(id_of("a"))))
    assert.is_true(fs.exists(state.dir(id_of("b"))))
    assert.is_true(fs.exists(state.dir(id_of("c"))))
    core.close(fd)
  end)
end)

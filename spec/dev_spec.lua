-- The container's /dev as docker gives it, used by an unprivileged user:
-- the standard nodes 0666, /dev/tty, the console and new ptys.
local helper = require "helper"

describe("/dev for a user", function()
  local before
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  it("gives every user the standard nodes, 0666, and its own stdio", function()
    local r = helper.lbox_run { "run", "-u", "65534", "sh", "-c", [[
      id -u
      for n in null zero full random urandom tty; do echo "$n $(stat -c '%A %u:%g %t,%T' /dev/$n)"; done
      echo gone > /dev/null && echo null-ok
      [ "$(head -c 3 /dev/zero | wc -c)" = 3 ] && echo zero-ok
      head -c 3 /dev/random > /dev/null && head -c 3 /dev/urandom > /dev/null && echo random-ok
      echo x > /dev/full || echo full-refused
      echo again > /dev/stdout; echo to-stderr > /dev/stderr
      cat /dev/tty 2>&1 </dev/null | grep -q 'No such device or address' && echo tty-without-terminal
    ]] }
    assert.are.equal(0, r.code, r.err)
    local expected = "65534\n"
    for _, node in ipairs { { "null", "1,3" }, { "zero", "1,5" }, { "full", "1,7" }, { "random", "1,8" },
                            { "urandom", "1,9" }, { "tty", "5,0" } } do
      expected = expected .. node[1] .. " crw-rw-rw- 0:0 " .. node[2] .. "\n"
    end
    expected = expected .. "null-ok\nzero-ok\nrandom-ok\nfull-refused\nagain\ntty-without-terminal\n"
    assert.are.equal(expected, r.out)
    assert.matches("No space left on device", r.err)
    assert.matches("to%-stderr\n", r.err)
  end)

  it("gives a user with -t its terminal: /dev/tty, the console, new ptys, as docker", function()
    local term = helper.start_pty { helper.lbox, "run", "-it", "-u", "nobody", "sh", "-c", [[
      echo "via-$(id -u)" > /dev/tty
      echo "console $(stat -c '%A %u:%g' /dev/console) $(stat -c '%u:%g' "$(tty)")"
      echo "pts $(stat -c '%A %u:%g' /dev/pts/ptmx) $(stat -Lc '%A' /dev/ptmx)"
      read line < /dev/tty && echo "read $line"
    ]] }
    assert.is_true(helper.expect(term, "pts [^\n]*\n"), term.output)
    require("lbox.core").write(term.master, "typed\n")
    assert.is_true(helper.expect(term, "read typed"), term.output)
    assert.are.equal(0, helper.finish_pty(term))
    assert.matches("via%-65534\r\n", term.output)
    -- docker's: crw--w---- owned by the user, group tty; ptmx for everyone
    assert.matches("console crw%-%-w%-%-%-%- 65534:5 65534:5\r\n", term.output)
    assert.matches("pts crw%-rw%-rw%- 0:0 crw%-rw%-rw%-\r\n", term.output)
  end)
end)

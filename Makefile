# lbox: a container runtime with a C core and Lua behaviour.
PREFIX ?= /usr/local
CC ?= cc
LUA ?= lua5.4
PKGS = lua5.4 libcgroup
CFLAGS ?= -O2 -g
# expanded when used, so that `make deps all` works on a machine without pkg-config yet
CFLAGS += -std=gnu11 -Wall -Wextra -Wshadow -fPIC $$(pkg-config --cflags $(PKGS))
LDLIBS = $$(pkg-config --libs $(PKGS))

CORE_SRC = core/core.c core/ns.c core/mount.c core/proc.c core/signal.c \
           core/fd.c core/tty.c core/cgroup.c
CORE_OBJ = $(CORE_SRC:core/%.c=build/%.o)

BUSTED = $(LUA) /usr/bin/busted

LUA_SRC = $(wildcard lua/lbox/*.lua)
LUA_BYTECODE = $(LUA_SRC:%=build/%)

.PHONY: all deps deps-bench deps-v2 install uninstall test test-v2 lint bench clean
all: lbox build/lbox/core.so $(LUA_BYTECODE)

# Bytecode copies, loaded instead of the sources when newer (see core/main.c).
build/lua/%.lua: lua/%.lua
	@mkdir -p $(@D)
	luac5.4 -o $@ $<

build/%.o: core/%.c core/core.h | build
	$(CC) $(CFLAGS) -c -o $@ $<

build:
	mkdir -p build/lbox

lbox: build/main.o $(CORE_OBJ)
	$(CC) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# The same core as a module for plain lua5.4 (and busted).
build/lbox/core.so: $(CORE_OBJ)
	$(CC) -shared -o $@ $^ $(LDFLAGS) $$(pkg-config --libs libcgroup)

# The distribution packages listed in vendor/ (root, Debian).
deps:
	vendor/install-packages vendor/build.txt vendor/test.txt
deps-bench:
	vendor/install-packages vendor/bench.txt
deps-v2:
	vendor/install-packages vendor/v2vm.txt

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/lbox/lua/lbox \
	  $(DESTDIR)$(PREFIX)/share/lbox/build/lua/lbox $(DESTDIR)$(PREFIX)/share/lbox/scripts
	install -m 755 lbox $(DESTDIR)$(PREFIX)/bin/lbox
	install -m 644 lua/lbox/*.lua $(DESTDIR)$(PREFIX)/share/lbox/lua/lbox/
	install -m 644 build/lua/lbox/*.lua $(DESTDIR)$(PREFIX)/share/lbox/build/lua/lbox/
	install -m 644 scripts/*.lua $(DESTDIR)$(PREFIX)/share/lbox/scripts/

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/bin/lbox $(DESTDIR)$(PREFIX)/share/lbox

test: all
	$(BUSTED) spec

lint:
	luacheck lua scripts spec
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability core

bench: all
	./lbox scripts/bench.lua

clean:
	rm -rf build lbox

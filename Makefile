# Conventional entry points; the work is in hack/ (read each script's header).
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: build install test
build:
	cargo build --release
install:
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" hack/install
test:
	hack/test

# prometheus pod: it serves on every address; its own target stays local.
s|127\.0\.0\.1:9090|localhost:9090|g

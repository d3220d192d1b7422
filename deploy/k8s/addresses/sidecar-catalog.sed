# catalog pod: the sidecar's listener and admin serve the cluster; the app it
# fronts stays on 127.0.0.1 in the same pod.
s|127\.0\.0\.1:10002|0.0.0.0:10002|g
s|127\.0\.0\.1:9903|0.0.0.0:9903|g

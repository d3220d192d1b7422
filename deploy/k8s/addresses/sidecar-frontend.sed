# frontend pod: the sidecar's listener and admin serve the cluster; the app it
# fronts stays on 127.0.0.1 in the same pod.
s|127\.0\.0\.1:10001|0.0.0.0:10001|g
s|127\.0\.0\.1:9902|0.0.0.0:9902|g

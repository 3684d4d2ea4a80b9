"""A real RTSP server for the tests (gst-rtsp-server), run with the system /usr/bin/python3.

Usage: rtsp_server.py PORT [WIDTH HEIGHT FPS]. Serves rtsp://127.0.0.1:PORT/test as MJPEG over
RTP (jpegenc needs only gstreamer1.0-plugins-good; no H.264 encoder is required). Prints
"ready" once it listens.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

port = sys.argv[1]
width, height, fps = (sys.argv[2:5] + ["320", "240", "15"][len(sys.argv[2:5]):])
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},"
    f"framerate={fps}/1,format=I420 ! jpegenc quality=70 ! rtpjpegpay name=pay0 pt=26 )")
factory.set_shared(True)
server.get_mount_points().add_factory("/test", factory)
if server.attach(None) == 0:
    sys.exit("cannot listen")
print("ready", flush=True)
GLib.MainLoop().run()

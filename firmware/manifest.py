# ruff: noqa: F821  (metadata, require and package are given by the tool that reads it)
# What ships to the handheld, in micropython-lib's manifest style: tools/build_firmware.py
# builds exactly these modules (and what they require), and tests/test_architecture.py holds
# the build to this list. Test-only code (the CBOR decoder, the event reader) lives in
# tests/mpy/, never here.
metadata(version="0.2.0", description="flagwise installer-handheld agent")

# No micropython-lib package: the MQTT client is agent/mqttc.py (docs/decisions.md).

package("agent", files=(
    "__init__.py",
    # the resident core and its boot
    "main.py", "stage.py", "start.py", "config.py", "flash.py", "identity.py", "outbox.py", "clock.py", "words.py",
    "kinds.py",
    # the console and a job's stages
    "console.py", "jobrun.py", "jobs.py", "predict.py", "saving.py",
    # the HAN link and the survey
    "link.py", "uart.py", "frame.py", "survey.py", "ids.py",
    # the event, its encoding and its signature
    "event.py", "cbor.py", "cose.py", "ecdsa.py",
    # delivery, and the check of the bridge's signed acks
    "delivery.py", "mqttc.py", "ackcheck.py", "cborlite.py", "ecverify.py", "ecpoint.py",
))

"""The audio-to-portrait pipeline of one session, shared by the live server and
``evp render``: emotion per frame, landmarks through the batched runtime, 3D-aware
alignment to the looped target video, and the avatar's generator."""

"""One router per resource; ``service.app`` mounts them under ``/api/v1``."""

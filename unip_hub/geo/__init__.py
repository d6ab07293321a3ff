"""Georeferenced rasters (drone orthomosaics): GeoTIFF in, a Cloud-Optimized class mask, polygons per class and
hotspots with areas and temperatures out, or a detector's boxes in map coordinates
(``pip install 'unip[geo]'``: rasterio, shapely, pyogrio, pyproj, scipy).

Imported lazily: ``import unip_hub.geo`` loads neither rasterio nor torch.
"""

from unip_hub.utils.lazy import exported_names, lazy_attributes

_EXPORTS = {
    "unip_hub.geo.raster": ("GeoError", "is_georeferenced"),
    "unip_hub.geo.segment": ("GeoSettings", "RasterResult", "segment_raster", "segment_raster_files"),
    "unip_hub.geo.detect": ("RasterDetections", "detect_raster", "detect_raster_files"),
    "unip_hub.geo.tiled": ("Tiling",),
    "unip_hub.geo.cli": ("add_geo_arguments", "geo_settings"),
}
__all__ = exported_names(_EXPORTS)
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)

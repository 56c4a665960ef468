//! What the runner reports for the job's SBOM: the image's packages as its databases list
//! them, in the CompleteJob message's shape.

use airlock_proto::v1 as pb;

use crate::fetch::image::packages::ImageContents;

/// `contents` as CompleteJob carries it.
pub fn image_contents_proto(contents: &ImageContents) -> pb::ImageContents {
    pb::ImageContents {
        os: contents.os.as_ref().map(|os| pb::OsRelease {
            id: os.id.clone(),
            version_id: os.version_id.clone().unwrap_or_default(),
            version_codename: os.version_codename.clone().unwrap_or_default(),
            pretty_name: os.pretty_name.clone().unwrap_or_default(),
        }),
        packages: contents
            .packages
            .iter()
            .map(|p| pb::OsPackage {
                manager: p.manager.as_str().to_owned(),
                name: p.name.clone(),
                version: p.version.clone(),
                architecture: p.architecture.clone().unwrap_or_default(),
                source_name: p.source_name.clone().unwrap_or_default(),
                source_version: p.source_version.clone().unwrap_or_default(),
                licenses: p.licenses.clone(),
            })
            .collect(),
        databases: contents.databases.clone(),
        unsupported: contents.unsupported.clone(),
    }
}
